"""RaGAN: train a GAN on a few labelled scans and generate synthetic image + label pairs.

The package imports nothing heavy here: the Slicer module loads TensorFlow-free parts of it (the nnU-Net writer,
the event protocol) in Slicer's own Python. Training and generation import TensorFlow when they run.
"""

__version__ = "0.1.0"
