"""RaGAN: train a GAN on a few labelled scans and generate synthetic image + label pairs.

The package imports nothing heavy here: the Slicer module loads TensorFlow-free parts of it (the nnU-Net writer,
the event protocol) in Slicer's own Python. Training and generation import TensorFlow when they run.
"""

import os

# Exact resume (a resumed run ends with the very weights of an uninterrupted one) needs sums in a fixed order. oneDNN's
# CPU kernels, and independent ops run side by side (the R1 step's second-order gradients), sum in an order that
# depends on thread timing: at batch 16 two runs of one spec differed after a step. TensorFlow reads these when it is
# first imported; a user may set them otherwise (faster on some machines, no longer exactly repeatable).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

__version__ = "0.1.0"
