"""Numbers that compare sets of slices: distances between feature distributions (the Frechet distance and the
kernel distance over RaGAN's own features, not over a pretrained network's), diversity within a set
(MS-SSIM between pairs), fine detail (blur and speckle), label statistics, and memorisation (synthetic slices closer to
a training slice than real unseen slices get).
"""

import numpy as np

from RaGANLib.quality.features import CHUNK, PERCENTILES, class_pixel_counts, component_counts

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001)  # the first 3 of the standard 5 scale weights, renormalised below
MS_SSIM_FILTER = 7  # fits the coarsest of 3 scales of a 64 px slice


Z_LIMIT = 10.0  # z-scores are clipped here: a feature the reference barely varies in cannot swamp the rest


def standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Feature rows z-scored with the reference's per-feature mean and std (a constant feature keeps std 1) and
    clipped to +-Z_LIMIT, so that no feature dominates a distance by its units or its tiny spread among real
    slices (such as the 5th intensity percentile, background in nearly every real slice): [reference_z, *others_z]."""
    mean = reference.mean(axis=0)
    std = reference.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [np.clip((np.asarray(rows, np.float64) - mean) / std, -Z_LIMIT, Z_LIMIT) for rows in (reference, *others)]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance over RaGAN's own features: between Gaussians fitted to the feature rows of a and b,
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    # (S_a S_b)^(1/2) has the trace of the square root of the symmetric sqrt(S_a) S_b sqrt(S_a).
    root_a = _symmetric_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_root = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    distance = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return max(0.0, float(distance))  # clip rounding below the true minimum of 0


def kernel_distance(
    a: np.ndarray, b: np.ndarray, subsets: int = 20, subset_size: int = 200, seed: int = 0
) -> tuple[float, float]:
    """Kernel distance over RaGAN's own features: the unbiased MMD^2 with the kernel (x.y / d + 1)^3, over subsets
    of min(subset_size, len(a), len(b)) rows of each set drawn without replacement; (mean, std) over the subsets."""
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("the kernel distance needs at least 2 feature rows in each set")
    dims = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        k_xx, k_yy, k_xy = ((p @ q.T / dims + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        values.append(within - 2 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


def mean_pairwise_ms_ssim(images: np.ndarray, pairs: int = 200, seed: int = 0) -> float:
    """Mean MS-SSIM (3 scales, filter size 7) over `pairs` random pairs of distinct slices of one set; high means
    little diversity. nan for fewer than 2 slices."""
    import tensorflow as tf

    n = len(images)
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    first = rng.integers(n, size=pairs)
    second = (first + rng.integers(1, n, size=pairs)) % n  # never the same slice
    shifted = (np.asarray(images, dtype=np.float32) + 1) / 2
    weights = np.asarray(MS_SSIM_WEIGHTS) / sum(MS_SSIM_WEIGHTS)
    scores = tf.image.ssim_multiscale(
        shifted[first][..., None],
        shifted[second][..., None],
        max_val=1.0,
        power_factors=tuple(float(w) for w in weights),
        filter_size=MS_SSIM_FILTER,
    )
    return float(np.mean(scores.numpy()))


# A set's fine detail against the training slices' (fine_detail_ratio), outside this band, reads as blurred (below) or
# grainy (above). Measured on the IBSI MR arms (docs/benchmarks.md): held-out real slices 1.06 (35 cases) and 1.21
# (5 cases); a smooth generator without pixel noise 0.24, one with faint grain 1.39; visibly speckled ones (the
# segmenter's term with pixel noise) 1.83 (35 cases) and 3.88 (5 cases).
DETAIL_BAND = (0.5, 1.5)


def fine_detail(images: np.ndarray) -> np.ndarray:
    """Each slice's fine detail: the mean square of the image minus its 3x3 local mean (the border repeated). Blur
    lowers it; speckle and pixel noise raise it."""
    values = [np.zeros(0, dtype=np.float64)]
    for start in range(0, len(images), CHUNK):
        x = np.asarray(images[start : start + CHUNK], dtype=np.float32)
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        h, w = x.shape[1:]
        local_mean = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9
        values.append(np.mean(np.square(x - local_mean), axis=(1, 2), dtype=np.float64))
    return np.concatenate(values)


def fine_detail_ratio(reference: np.ndarray, other: np.ndarray) -> float:
    """The other slices' mean fine detail as a multiple of the reference slices' (1: as much; nan when the reference
    has none, e.g. constant slices)."""
    base = float(np.mean(fine_detail(reference)))
    return float(np.mean(fine_detail(other))) / base if base > 0 else float("nan")


def detail_is_off(ratio: float) -> bool:
    """Whether a fine_detail_ratio lies outside DETAIL_BAND (blurred or grainy); NaN (no reference detail) is not."""
    return ratio < DETAIL_BAND[0] or ratio > DETAIL_BAND[1]


def detail_verdict(ratio: float) -> str:
    """How a fine_detail_ratio against the training slices reads, in words."""
    low, high = DETAIL_BAND
    if ratio < low:
        return f"smoother than the real slices (below {low}x): blurred, fine structure missing"
    if ratio > high:
        return f"grainier than the real slices (above {high}x): speckle or noise the real slices do not have"
    return f"within {low}-{high}x of the real slices"


def label_statistics(labels: np.ndarray, classes: int) -> dict:
    """How often each foreground class appears, its area fraction (percentiles over the slices that hold it) and its
    mean count of 8-connected components there; and the shares of slices with no foreground and of slices where any
    present class is split into more than one component."""
    h, w = labels.shape[1:]
    area = class_pixel_counts(labels, classes)[:, 1:] / (h * w)
    components = component_counts(labels, classes)
    present = area > 0
    per_class = []
    for c in range(1, classes):
        here = present[:, c - 1]
        quantiles = np.percentile(area[here, c - 1], PERCENTILES) if here.any() else None
        per_class.append(
            {
                "class": c,
                "frequency": float(here.mean()),
                "area": None if quantiles is None else {f"p{q}": float(v) for q, v in zip(PERCENTILES, quantiles)},
                "components_mean": float(components[here, c - 1].mean()) if here.any() else None,
            }
        )
    return {
        "slices": len(labels),
        "classes": per_class,
        "empty_share": float((~present.any(axis=1)).mean()),
        "fragmented_share": float((components > 1).any(axis=1).mean()),
    }


def nearest_ncc(queries: np.ndarray, references: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each query slice, the highest normalised cross-correlation (Pearson correlation of the pixels) with any
    reference slice, and that reference's index. A constant slice has NCC 0 with everything."""
    if not len(references):
        raise ValueError("no reference slices to compare with")
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    nearest = np.zeros(len(queries), dtype=np.int64)
    for q_start in range(0, len(queries), batch):
        q = _unit_rows(queries[q_start : q_start + batch])
        q_best, q_nearest = best[q_start : q_start + batch], nearest[q_start : q_start + batch]
        for r_start in range(0, len(references), batch):
            ncc = q @ _unit_rows(references[r_start : r_start + batch]).T
            column = ncc.argmax(axis=1)
            value = ncc[np.arange(len(q)), column]
            better = value > q_best
            q_best[better] = value[better]
            q_nearest[better] = column[better] + r_start
    return np.clip(best, -1.0, 1.0), nearest


def memorisation(synthetic: np.ndarray, training: np.ndarray, held_out: np.ndarray) -> dict:
    """Synthetic slices that look copied from a training slice: closer to their nearest training slice (NCC) than
    the 99th percentile of real held-out slices are to theirs."""
    held_out_ncc, _ = nearest_ncc(held_out, training)
    threshold = float(np.percentile(held_out_ncc, 99))
    synthetic_ncc, nearest = nearest_ncc(synthetic, training)
    return {
        "threshold": threshold,
        "share": float((synthetic_ncc > threshold).mean()),
        "synthetic_ncc": synthetic_ncc,
        "nearest": nearest,
        "held_out_ncc": held_out_ncc,
    }


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def _unit_rows(slices: np.ndarray) -> np.ndarray:
    """Flattened slices as zero-mean, unit-norm float32 rows; rows of (nearly) constant slices are all zero."""
    rows = np.asarray(slices, dtype=np.float32).reshape(len(slices), -1)
    rows = rows - rows.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    constant = norm <= 1e-6 * np.sqrt(rows.shape[1])  # std below 1e-6 of the [-1, 1] range
    return np.where(constant, 0.0, rows / np.where(constant, 1.0, norm)).astype(np.float32)
