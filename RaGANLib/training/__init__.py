"""Training: the trainer and its parts (input pipeline, losses, augmentation, checkpoints, best model, run folder)."""
