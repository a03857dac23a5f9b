"""RaGAN: train a GAN on a few labelled scans and generate synthetic image + label pairs.

The package imports nothing heavy here: the Slicer module loads TensorFlow-free parts of it (the nnU-Net writer,
the event protocol) in Slicer's own Python. Training and generation import TensorFlow when they run.
"""

import os

# Exact resume (a resumed run ends with the very weights of an uninterrupted one) needs sums in a fixed order.
# Independent ops run side by side (the R1 step's second-order gradients) add up in an order that depends on thread
# timing: repeated from one state, that step gave different weights 7 times in 7 at batch 16. One inter-op thread
# (intra-op parallelism, where the work is, stays) made it repeat exactly within a process. (Two fresh processes at
# batch 16 still differ: not yet found; batch 4 resumes exactly.) TensorFlow reads this when it starts; a user may set
# it otherwise.
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

__version__ = "0.1.0"
