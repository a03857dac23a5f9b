"""RaGAN: train a GAN on a few labelled scans and generate synthetic image + label pairs.

The package imports nothing heavy here: the Slicer module loads TensorFlow-free parts of it (the nnU-Net writer,
the event protocol) in Slicer's own Python. Training and generation import TensorFlow when they run.
"""

import os

# oneDNN's CPU kernels sum in an order that depends on thread timing: two runs of the same spec (and a resumed run
# against an uninterrupted one) would end with different weights. Set before TensorFlow is first imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
