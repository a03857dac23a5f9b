"""Random streams derived from one seed by name, so that each use of a seed draws numbers of its own.

    rng = stream(spec.seed, "layouts")                 # np.random.Generator
    rng = stream(spec.seed, "empty slices", case)      # one generator per case
    latents = offset_seed(spec.seed, "preview")        # an int seed for code that takes one (synthetic.sample)

The stream numbers and the offset are what the code used before they had names: every seeded result (checkpoints,
previews, generated pairs, phantom cases, benchmark figures) stays bit for bit what it was. Streams with no number
of their own are told apart by their indices only, as before.
"""

import numpy as np

STREAMS = {
    "layouts": (1,),  # generate: the order in which a conditional model's training labels are drawn and moved
    "scoring": (3,),  # best_model: the latents and labels that score the generator
    "phantom vessels": (3,),  # phantom: a case's vessels, apart from its other structures (a phantom case's seed)
    "batches": (),  # training: the slices of step s's batch, per input pipeline and replica ([seed, s, p, r])
    "empty slices": (),  # prepare: which unlabelled slices of case i join the training slices ([seed, i])
    "unet batches": (),  # quality.downstream: the U-Net's batch of step i ([seed, i])
}
OFFSETS = {"preview": 7919}  # training: the preview's latents and shown slices (a prime, far from nearby seeds)


def stream(seed: int, name: str, *indices: int) -> np.random.Generator:
    """The random generator of the stream `name` of `seed` (and `indices`, for one of many: a case, a step)."""
    return np.random.default_rng([int(seed), *STREAMS[name], *indices])


def offset_seed(seed: int, name: str) -> int:
    """A seed of its own for `name`, for code that takes an integer seed."""
    return int(seed) + OFFSETS[name]
