"""Features of labelled slices that RaGAN computes itself, without pretrained networks, to compare synthetic slices
with real ones: intensity statistics, texture (grey-level co-occurrence and local binary patterns) and label shape.

Inputs are batches of 2D slices: images [n, H, W] in [-1, 1] (-1 is background or low intensity) and labels
[n, H, W] of class indices 0..classes-1 (0 is background). Everything is vectorised over the batch and computed in
chunks of slices, so memory stays bounded for thousands of slices.
"""

import numpy as np
import SimpleITK as sitk

CHUNK = 256  # slices computed together
PERCENTILES = (5, 25, 50, 75, 95)
GLCM_LEVELS = 16
LBP_BINS = 10  # riu2 codes of 8 neighbours: 0..8 uniform patterns by their count of ones, 9 for all others
# The 8 neighbours at radius 1 in circular order, as (row, column) offsets.
LBP_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
SHAPE_FEATURES = ("area", "perimeter", "components", "centroid_row", "centroid_col", "present")


def feature_names(classes: int) -> list[str]:
    """Names of the columns of `slice_features`, in order."""
    foreground = range(1, classes)
    return (
        ["intensity_mean", "intensity_std", "intensity_skewness", "intensity_kurtosis"]
        + [f"intensity_p{q}" for q in PERCENTILES]
        + [f"class{c}_intensity_{s}" for c in foreground for s in ("mean", "std")]
        + ["glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_correlation"]
        + [f"lbp_{b}" for b in range(LBP_BINS)]
        + [f"class{c}_{s}" for c in foreground for s in SHAPE_FEATURES]
    )


def slice_features(images: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, list[str]]:
    """One feature row per slice, [n, d] float64, and the d feature names (`feature_names`).

    Intensity: mean, std, skewness, excess kurtosis and percentiles of the whole slice, and mean and std inside each
    foreground class (0 when absent). Texture: GLCM contrast, homogeneity, energy and correlation, and the riu2 LBP
    histogram as fractions. Shape per foreground class: area fraction, perimeter (class pixels with a 4-neighbour of
    another class, divided by H), 8-connected components, centroid row and column as fractions of H and W (0.5 when
    absent) and a present flag.
    """
    if images.ndim != 3 or images.shape != labels.shape:
        raise ValueError(f"images {images.shape} and labels {labels.shape} must both be [n, H, W]")
    rows = [np.zeros((0, len(feature_names(classes))))]
    for start in range(0, len(images), CHUNK):
        x = np.asarray(images[start : start + CHUNK], dtype=np.float32)
        lab = np.asarray(labels[start : start + CHUNK])
        if lab.size and lab.max() >= classes:
            raise ValueError(f"labels hold class {lab.max()}, but there are only {classes} classes")
        counts = class_pixel_counts(lab, classes)
        rows.append(np.hstack([_intensity(x, lab, counts), _glcm(x), _lbp(x), _shape(lab, counts)]))
    return np.vstack(rows), feature_names(classes)


def class_pixel_counts(labels: np.ndarray, classes: int) -> np.ndarray:
    """Pixels of each class in each slice: [n, classes] int."""
    counts = [np.zeros((0, classes), dtype=np.int64)]
    for start in range(0, len(labels), CHUNK):
        lab = np.asarray(labels[start : start + CHUNK])
        counts.append(_per_class(lab, classes, None).astype(np.int64))
    return np.vstack(counts)


def component_counts(labels: np.ndarray, classes: int) -> np.ndarray:
    """8-connected components of each foreground class in each slice: [n, classes - 1] int (0 where absent)."""
    n, h, w = labels.shape
    counts = np.zeros((n, classes - 1), dtype=np.int64)
    for start in range(0, n, CHUNK):
        lab = np.asarray(labels[start : start + CHUNK])
        size = len(lab)
        # The slices of the chunk stacked into one tall image, a blank row below each to keep them apart.
        stacked = np.zeros((size, h + 1, w), dtype=np.uint8)
        owner_of_pixel = np.repeat(np.arange(size), (h + 1) * w)
        for c in range(1, classes):
            stacked[:, :h] = lab == c
            components = sitk.GetArrayFromImage(
                sitk.ConnectedComponent(sitk.GetImageFromArray(stacked.reshape(size * (h + 1), w)), True)
            ).ravel()
            inside = components > 0
            owner = np.zeros(int(components.max()) + 1, dtype=np.int64)
            owner[components[inside]] = owner_of_pixel[inside]
            counts[start : start + size, c - 1] = np.bincount(owner[1:], minlength=size)
    return counts


def _per_class(labels: np.ndarray, classes: int, weights: np.ndarray | None) -> np.ndarray:
    """Sum of `weights` (or count of pixels) over each class of each slice: [n, classes] float64."""
    n = len(labels)
    index = (np.arange(n)[:, None] * classes + labels.reshape(n, -1)).ravel()
    flat = None if weights is None else weights.reshape(-1)
    return np.bincount(index, weights=flat, minlength=n * classes).reshape(n, classes).astype(np.float64)


def _intensity(x: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n, classes = counts.shape
    flat = x.reshape(n, -1).astype(np.float64)
    mean = flat.mean(axis=1)
    deviation = flat - mean[:, None]
    m2, m3, m4 = ((deviation**k).mean(axis=1) for k in (2, 3, 4))
    varied = m2 > 1e-12
    safe_m2 = np.where(varied, m2, 1.0)
    skewness = np.where(varied, m3 / safe_m2**1.5, 0.0)
    kurtosis = np.where(varied, m4 / safe_m2**2 - 3, 0.0)
    percentiles = np.percentile(flat, PERCENTILES, axis=1).T
    safe_counts = np.maximum(counts, 1)
    class_mean = _per_class(labels, classes, flat) / safe_counts
    class_var = np.maximum(_per_class(labels, classes, flat**2) / safe_counts - class_mean**2, 0.0)
    inside = np.stack([class_mean, np.sqrt(class_var)], axis=2)[:, 1:].reshape(n, -1)
    return np.hstack([np.stack([mean, np.sqrt(m2), skewness, kurtosis], axis=1), percentiles, inside])


def _glcm(x: np.ndarray) -> np.ndarray:
    """Contrast, homogeneity, energy and correlation of the symmetric, normalised co-occurrence matrices of the
    image quantised to GLCM_LEVELS over [-1, 1], for 1 pixel right and 1 pixel down, averaged over the two."""
    n, levels = len(x), GLCM_LEVELS
    q = np.clip(((x + 1) / 2 * levels).astype(np.int64), 0, levels - 1)
    i, j = np.meshgrid(np.arange(levels), np.arange(levels), indexing="ij")
    stats = np.zeros((n, 4))
    for first, second in ((q[:, :, :-1], q[:, :, 1:]), (q[:, :-1, :], q[:, 1:, :])):
        index = ((np.arange(n)[:, None, None] * levels + first) * levels + second).ravel()
        p = np.bincount(index, minlength=n * levels * levels).reshape(n, levels, levels).astype(np.float64)
        p = p + p.transpose(0, 2, 1)
        p /= p.sum(axis=(1, 2), keepdims=True)
        mu = (p * i).sum(axis=(1, 2))[:, None, None]  # the same for rows and columns: p is symmetric
        variance = (p * (i - mu) ** 2).sum(axis=(1, 2))
        covariance = (p * (i - mu) * (j - mu)).sum(axis=(1, 2))
        flat = variance < 1e-12  # a single grey level: perfectly correlated by convention
        correlation = np.where(flat, 1.0, covariance / np.where(flat, 1.0, variance))
        contrast = (p * (i - j) ** 2).sum(axis=(1, 2))
        homogeneity = (p / (1 + (i - j) ** 2)).sum(axis=(1, 2))
        energy = np.sqrt((p**2).sum(axis=(1, 2)))
        stats += np.stack([contrast, homogeneity, energy, correlation], axis=1) / 2
    return stats


def _lbp(x: np.ndarray) -> np.ndarray:
    """Histogram (fractions) of rotation-invariant uniform LBP codes of the 8 neighbours at radius 1 (the pixel
    square around each pixel, not interpolated) over the pixels not on the border."""
    n, h, w = x.shape
    centre = x[:, 1:-1, 1:-1]
    bits = [x[:, 1 + dr : h - 1 + dr, 1 + dc : w - 1 + dc] >= centre for dr, dc in LBP_NEIGHBOURS]
    ones = sum(b.astype(np.uint8) for b in bits)
    transitions = sum((bits[k] != bits[(k + 1) % 8]).astype(np.uint8) for k in range(8))
    code = np.where(transitions <= 2, ones, LBP_BINS - 1)
    index = (np.arange(n)[:, None, None] * LBP_BINS + code).ravel()
    return np.bincount(index, minlength=n * LBP_BINS).reshape(n, LBP_BINS) / ((h - 2) * (w - 2))


def _shape(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n, h, w = labels.shape
    classes = counts.shape[1]
    border = np.zeros(labels.shape, dtype=bool)  # a 4-neighbour inside the slice holds another class
    border[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    border[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    border[:, :, 1:] |= labels[:, :, 1:] != labels[:, :, :-1]
    border[:, :, :-1] |= labels[:, :, :-1] != labels[:, :, 1:]
    perimeter = _per_class(labels, classes, border.astype(np.float64)) / h
    rows = np.broadcast_to(np.arange(h, dtype=np.float64)[None, :, None], labels.shape)
    columns = np.broadcast_to(np.arange(w, dtype=np.float64)[None, None, :], labels.shape)
    present = counts > 0
    safe_counts = np.maximum(counts, 1)
    centroid_row = np.where(present, (_per_class(labels, classes, rows) / safe_counts + 0.5) / h, 0.5)
    centroid_col = np.where(present, (_per_class(labels, classes, columns) / safe_counts + 0.5) / w, 0.5)
    components = component_counts(labels, classes)
    shape = [counts[:, 1:] / (h * w), perimeter[:, 1:], components, centroid_row[:, 1:], centroid_col[:, 1:]]
    shape.append(present[:, 1:])
    return np.stack(shape, axis=2).reshape(n, -1).astype(np.float64)
