"""How much synthetic data a segmentation training set can take, by what the phantom benchmark measured: with a joint
model, U-Net batches up to 25% synthetic did no harm and 50% or more lowered the Dice (docs/benchmark-phantom.md);
with a conditional model (spec version 4, the converged 600-step U-Net, 3 GAN x 3 U-Net seeds) 25% raised the mean
foreground Dice beyond the spread, 50% was level with the real cases alone and synthetic slices alone lowered it
(docs/conditional-vs-joint-phantom.md). A user who adds 500 synthetic pairs to 12 real cases trains on 98% synthetic
data, so `ragan generate` makes a quarter of a training set by default, and the exports say when synthetic pairs
swamp the real ones, and how many would not.

TensorFlow-free: the Slicer module's export uses it too.
"""

SUPPORTED_SHARE = {"joint": 0.25, "conditional": 0.5}  # the largest share found harmless, by the model's mode
DEFAULT_SHARE = 0.25  # what `generate` makes without --count: the share that helped (conditional) or did no harm
BENCHMARK = {"joint": "docs/benchmark-phantom.md", "conditional": "docs/conditional-vs-joint-phantom.md"}


def count_at(real: int, share: float) -> int:
    """The most synthetic items that keep `real` real ones at `share` synthetic, rounded down (12 real: 4 at 25%)."""
    return int(real * share / (1 - share) + 1e-9)


def default_count(real: int) -> int:
    """What `generate` makes beside `real` training slices when no count is given: DEFAULT_SHARE, at least 1."""
    return max(1, count_at(real, DEFAULT_SHARE))


def supported_count(real: int, mode: str) -> int:
    """The most synthetic items that keep `real` real ones at the share the benchmark supports for `mode` (12 real
    slices take 4 joint or 12 conditional ones)."""
    return count_at(real, SUPPORTED_SHARE[mode])


def share_of(synthetic: int, real: int) -> float:
    return synthetic / (synthetic + real) if synthetic + real else 0.0


def share_warning(synthetic: int, real: int, mode: str, unit: str, drawn: str = "") -> str | None:
    """A warning in plain words when `synthetic` items next to `real` ones exceed the supported share, else None.
    `unit`: what is counted (slices, cases); `drawn`: why that count is what a segmentation network's batches see."""
    share, supported = share_of(synthetic, real), SUPPORTED_SHARE[mode]
    if share <= supported:
        return None
    if not real:
        return (
            f"{synthetic} synthetic {unit} and no real ones make a training set that is all synthetic{drawn}. With a "
            f"{mode} model, the phantom benchmark ({BENCHMARK[mode]}) found synthetic {unit} alone lower a U-Net's "
            f"Dice: add real {unit}; at most {supported:.0%} synthetic did no harm"
        )
    return (
        f"{synthetic} synthetic {unit} next to {real} real ones make a training set that is {share:.0%} synthetic"
        f"{drawn}. With a {mode} model, the phantom benchmark ({BENCHMARK[mode]}) found no harm to a U-Net's Dice up "
        f"to {supported:.0%} synthetic and a lower Dice beyond: use at most {supported_count(real, mode)} synthetic "
        f"{unit} with these {real} real ones"
    )


def share_figures(synthetic: int, real: int, mode: str) -> dict:
    """The figures behind the warning, for events: the share, the supported share and the most synthetic items."""
    return {
        "synthetic": synthetic,
        "real": real,
        "share": round(share_of(synthetic, real), 4),
        "supported_share": SUPPORTED_SHARE[mode],
        "supported_count": supported_count(real, mode),
    }
