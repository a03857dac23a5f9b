"""Label layouts for the conditional generator: real label slices moved by a random smooth elastic + affine
deformation, so that a few training cases give many plausible layouts.

Label-safe: every output pixel takes the class of its nearest source pixel (no blending of class indices, no class
invented), pixels moved in from outside the slice are background. NumPy only, seeded by the caller's generator: the
same generator state gives the same layout on every machine.
"""

import numpy as np

ROTATION = np.pi / 18  # up to 10 degrees
ZOOM = 0.08  # up to 8% larger or smaller (log scale)
SHIFT = 0.06  # up to 6% of the slice size
ELASTIC_GRID = 5  # control points per side of the smooth displacement
ELASTIC = 0.03  # standard deviation of a control point's displacement, as a share of the slice size


def _smooth(coarse: np.ndarray, size: int) -> np.ndarray:
    """A [n, n] grid of values spread bilinearly over a [size, size] slice (corners at the slice corners)."""
    n = coarse.shape[0]
    position = np.linspace(0, n - 1, size)
    low = np.minimum(np.floor(position).astype(int), n - 2)
    weight = position - low
    spread = np.zeros((size, n))
    spread[np.arange(size), low] = 1 - weight
    spread[np.arange(size), low + 1] = weight
    return spread @ coarse @ spread.T


def move_label(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A [size, size] slice of class indices, rotated, zoomed and shifted about its centre and smoothly warped."""
    size = label.shape[0]
    angle, zoom = rng.uniform(-ROTATION, ROTATION), np.exp(rng.uniform(-ZOOM, ZOOM))
    shift = rng.uniform(-SHIFT, SHIFT, size=2) * size
    warp = rng.normal(0, ELASTIC * size, size=(2, ELASTIC_GRID, ELASTIC_GRID))
    centre = (size - 1) / 2
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float64) - centre
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    # Each output pixel looks up the source pixel that the inverse move brings it to.
    source_rows = cos * rows - sin * columns + centre - shift[0] + _smooth(warp[0], size)
    source_columns = sin * rows + cos * columns + centre - shift[1] + _smooth(warp[1], size)
    r, c = np.rint(source_rows).astype(int), np.rint(source_columns).astype(int)
    inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
    return np.where(inside, label[np.clip(r, 0, size - 1), np.clip(c, 0, size - 1)], 0).astype(label.dtype)


def moved_layouts(labels: np.ndarray, rng: np.random.Generator):
    """Endless layouts: a training label slice drawn at random, then moved; one after the other from `rng`."""
    while True:
        yield move_label(labels[rng.integers(len(labels))], rng)
