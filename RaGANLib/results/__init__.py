"""Results out: synthetic slices sampled and written, `ragan generate`, previews, and where RaGAN may write."""
