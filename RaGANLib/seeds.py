"""Random streams derived from one seed by name, so that each use of a seed draws numbers of its own.

    rng = stream(spec.seed, "layouts")                 # np.random.Generator
    rng = stream(spec.seed, "empty slices", case)      # one generator per case
    latents = seed_of(spec.seed, "preview")            # an int seed for code that takes one (synthetic.sample)

The numbered streams are what the code used before they had names: checkpoints, generated pairs, phantom cases and
benchmark figures stay bit for bit what they were. Streams with no number of their own are told apart by their
indices only, as before. A stream added since takes the bytes of its name as its numbers, which no numbered stream
or index list shares.
"""

import numpy as np

STREAMS = {
    "layouts": (1,),  # generate: the order in which a conditional model's training labels are drawn and moved
    "scoring": (3,),  # best_model: the latents and labels that score the generator
    "phantom vessels": (3,),  # phantom: a case's vessels, apart from its other structures (a phantom case's seed)
    "batches": (),  # training: the slices of step s's batch, per input pipeline and replica ([seed, s, p, r])
    "empty slices": (),  # prepare: which unlabelled slices of case i join the training slices ([seed, i])
    "unet batches": (),  # quality.downstream: the U-Net's batch of step i ([seed, i])
    "preview": tuple(b"preview"),  # training: the preview's latents and shown slices
    "augmented real pairs": tuple(b"augmented real pairs"),  # evaluate: the real+augmented arms' moved real pairs
}


def stream(seed: int, name: str, *indices: int) -> np.random.Generator:
    """The random generator of the stream `name` of `seed` (and `indices`, for one of many: a case, a step)."""
    return np.random.default_rng([int(seed), *STREAMS[name], *indices])


def seed_of(seed: int, name: str) -> int:
    """An integer seed drawn from the stream `name` of `seed`, for code that takes one."""
    return int(stream(seed, name).integers(2**31))
