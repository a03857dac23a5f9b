"""Data in: finding and reading the cases, nnU-Net datasets, phantom cases, and the prepared training slices."""
