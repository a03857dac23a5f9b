"""Label layouts for the conditional generator: real label slices moved by a random smooth elastic + affine
deformation, so that a few training cases give many plausible layouts; on request with more of the rare and thin
classes: connected components of those classes taken from other training label slices, moved a little and pasted
where they fit their host (a lesion only onto organ pixels, as in the slice it came from).

Label-safe: every output pixel takes the class of its nearest source pixel (no blending of class indices, no class
invented), pixels moved in from outside the slice are background, a pasted component keeps its class. Seeded by the
caller's generator: the same generator state gives the same layout on every machine. For the memorisation check,
the training pairs moved like their layouts (moved_pairs): what the layouts alone carry over from the patients, and
for the downstream test augmentation of the real cases.
"""

import dataclasses
import itertools

import numpy as np
import SimpleITK as sitk

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


def move(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random move of a [size, size] slice, rotated, zoomed and shifted about its centre and smoothly warped: for
    each output pixel the (fractional) source row and column that the inverse move brings it to."""
    angle, zoom = rng.uniform(-ROTATION, ROTATION), np.exp(rng.uniform(-ZOOM, ZOOM))
    shift = rng.uniform(-SHIFT, SHIFT, size=2) * size
    warp = rng.normal(0, ELASTIC * size, size=(2, ELASTIC_GRID, ELASTIC_GRID))
    centre = (size - 1) / 2
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float64) - centre
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    source_rows = cos * rows - sin * columns + centre - shift[0] + _smooth(warp[0], size)
    source_columns = sin * rows + cos * columns + centre - shift[1] + _smooth(warp[1], size)
    return source_rows, source_columns


def move_label(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A [size, size] slice of class indices, moved (`move`): each pixel takes its nearest source pixel's class."""
    return _nearest(label, *move(label.shape[0], rng))


def _nearest(label: np.ndarray, source_rows: np.ndarray, source_columns: np.ndarray) -> np.ndarray:
    size = label.shape[0]
    r, c = np.rint(source_rows).astype(int), np.rint(source_columns).astype(int)
    inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
    return np.where(inside, label[np.clip(r, 0, size - 1), np.clip(c, 0, size - 1)], 0).astype(label.dtype)


def _linear(image: np.ndarray, source_rows: np.ndarray, source_columns: np.ndarray) -> np.ndarray:
    """The image at fractional source positions, interpolated linearly; -1 (the bottom of the [-1, 1] scale, air)
    outside the slice."""
    size = image.shape[0]
    padded = np.pad(np.asarray(image, np.float64), 1, constant_values=-1.0)
    top, left = np.floor(source_rows).astype(int), np.floor(source_columns).astype(int)
    down, right = source_rows - top, source_columns - left

    def at(r, c):  # a position up to one pixel outside the slice reads the padding's -1
        return padded[np.clip(r + 1, 0, size + 1), np.clip(c + 1, 0, size + 1)]

    value = (at(top, left) * (1 - down) + at(top + 1, left) * down) * (1 - right) + (
        at(top, left + 1) * (1 - down) + at(top + 1, left + 1) * down
    ) * right
    return value.astype(np.float32)


MAX_ADD_RARE = 10  # components of each class pasted into one layout, at most
RARE_SHARE = 0.5  # rare: fewer pixels than half those of the most common foreground class
THIN_EDGE_SHARE = 0.6  # thin: more pixels on its edge than this; a band w px wide has 2/w, so at most about 3 px wide
PASTE_ROTATION = np.pi / 12  # a pasted component turns up to 15 degrees about its centre ...
PASTE_SHIFT = 0.12  # ... and moves up to 12% of the slice size from where it lay in its own slice
PASTE_TRIES = 3  # components tried for each one pasted before it is skipped
USUAL_HOST = 0.1  # a host class around fewer of a class's components than this is no place where it belongs


@dataclasses.dataclass(frozen=True)
class Component:
    """One connected component of a class in a training label slice: where it lies and what surrounds it."""

    slice_index: int
    cls: int
    host: int  # the class most of its neighbouring pixels belong to: the only class it may be pasted onto
    rows: np.ndarray  # its pixels, relative to `home`
    columns: np.ndarray
    home: tuple[int, int]  # its centre, rounded to a pixel


def rare_and_thin_classes(labels: np.ndarray, classes: int) -> list[int]:
    """The foreground classes that a GAN's layouts hold too little of: rare ones (by pixel share, below RARE_SHARE of
    the most common foreground class) and thin ones (most pixels touching another class, THIN_EDGE_SHARE). Indices
    from `classes` on (a body outline, RaGANLib/data/body.py) are neither chosen nor compared with."""
    counts = np.bincount(labels.ravel(), minlength=classes)[:classes]
    padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)), mode="edge")
    above, below = padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]
    left, right = padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]
    edge = (above != labels) | (below != labels) | (left != labels) | (right != labels)
    edge_counts = np.bincount(labels[edge], minlength=classes)[:classes]
    largest = counts[1:].max(initial=0)
    return [
        c
        for c in range(1, classes)
        if counts[c] and (counts[c] < RARE_SHARE * largest or edge_counts[c] > THIN_EDGE_SHARE * counts[c])
    ]


def components_of(labels: np.ndarray, chosen: list[int]) -> list[Component]:
    """Every 8-connected component of the `chosen` classes in the label slices, with its host class; those with an
    unusual host (USUAL_HOST: a lesion at the tip of a shrinking organ, surrounded by background) are left out."""
    found = []
    for index, label in enumerate(labels):
        for cls in chosen:
            mask = label == cls
            if not mask.any():
                continue
            numbered = sitk.GetArrayFromImage(
                sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
            )
            for number in range(1, int(numbered.max()) + 1):
                rows, columns = np.nonzero(numbered == number)
                ring = _neighbours(numbered == number) & ~mask
                if not ring.any():  # it fills the slice: nothing to be pasted onto
                    continue
                host = int(np.bincount(label[ring]).argmax())
                home = (round(rows.mean()), round(columns.mean()))
                found.append(Component(index, cls, host, rows - home[0], columns - home[1], home))
    hosts = {cls: np.bincount([c.host for c in found if c.cls == cls]) for cls in {c.cls for c in found}}
    return [c for c in found if hosts[c.cls][c.host] >= USUAL_HOST * hosts[c.cls].sum()]


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel in all 8 directions."""
    padded = np.pad(mask, 1)
    size_r, size_c = mask.shape
    grown = np.zeros_like(mask)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            grown |= padded[dr : dr + size_r, dc : dc + size_c]
    return grown


def paste_component(layout: np.ndarray, component: Component, rng: np.random.Generator) -> bool:
    """Paste `component` into `layout` (in place), turned a little and shifted by up to PASTE_SHIFT from where it lay,
    at a place drawn among those where every pixel under it is its host class; False when none fits (the layout is
    unchanged). Each pixel of the turned component looks up the component pixel that the inverse turn brings it to
    (nearest), so a thin vessel keeps no gaps."""
    size = layout.shape[0]
    reach = int(np.ceil(np.hypot(component.rows, component.columns).max())) + 1
    offsets = np.mgrid[-reach : reach + 1, -reach : reach + 1].reshape(2, -1).astype(np.float64)
    width = 2 * reach + 1
    shape = np.zeros((width + 2, width + 2), dtype=bool)  # the component on a grid about its centre, a blank border
    shape[component.rows + reach + 1, component.columns + reach + 1] = True
    most = max(1, round(PASTE_SHIFT * size))
    shifts = np.mgrid[-most : most + 1, -most : most + 1].reshape(2, -1).T  # every shift in the window
    home = component.home
    angle = rng.uniform(-PASTE_ROTATION, PASTE_ROTATION)
    cos, sin = np.cos(angle), np.sin(angle)
    source_r = np.rint(cos * offsets[0] + sin * offsets[1]).astype(int) + reach + 1
    source_c = np.rint(-sin * offsets[0] + cos * offsets[1]).astype(int) + reach + 1
    covered = shape[np.clip(source_r, 0, width + 1), np.clip(source_c, 0, width + 1)]
    turned = offsets[:, covered].astype(int)  # [2, pixels] about the centre
    rows = home[0] + shifts[:, :1] + turned[0]  # [shifts, pixels]
    columns = home[1] + shifts[:, 1:] + turned[1]
    inside = ((rows >= 0) & (rows < size) & (columns >= 0) & (columns < size)).all(axis=1)
    fits = np.flatnonzero(inside)
    fits = fits[(layout[rows[fits], columns[fits]] == component.host).all(axis=1)]
    if not len(fits):
        return False
    chosen = fits[rng.integers(len(fits))]
    layout[rows[chosen], columns[chosen]] = component.cls
    return True


def moved_layouts(labels: np.ndarray, rng: np.random.Generator, extra: int = 0, classes: int | None = None):
    """Endless layouts: a training label slice drawn at random, then moved; one after the other from `rng`.
    `extra` > 0: then up to `extra` components of each rare or thin class, each drawn from another training slice,
    are pasted where they fit (paste_component; PASTE_TRIES components are tried for each). `extra` 0 draws nothing
    more from `rng`: the layouts of before. `classes`: the label classes, when `labels` hold a body class after them
    (default: every index in `labels`)."""
    chosen = rare_and_thin_classes(labels, classes or int(labels.max()) + 1) if extra else []
    components = components_of(labels, chosen)
    by_class = {}
    for component in components:
        by_class.setdefault(component.cls, []).append(component)
    for index, source in _draws(labels, rng):
        layout = _nearest(labels[index], *source)
        for found in by_class.values():
            others = [c for c in found if c.slice_index != index]
            for _ in range(extra if others else 0):
                for _ in range(PASTE_TRIES):
                    if paste_component(layout, others[rng.integers(len(others))], rng):
                        break
        yield layout


def moved_pairs(
    labels: np.ndarray, images: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` training pairs augmented by the layouts' random moves: (images [count, size, size] float32, labels of
    the labels' dtype), each a training slice drawn at random and moved, its label by nearest source pixel, its image
    linearly, by the same move. The labels are the first `count` layouts of moved_layouts(labels, rng) without extra
    components. What augmenting the real cases gives, against which synthetic pairs must prove their worth; its images
    alone are what the layouts carry over from the training slices: the floor of a conditional generator's
    memorisation check."""
    moved_images = np.empty((count, *images.shape[1:]), np.float32)  # filled in place: the pairs may be thousands
    moved_labels = np.empty((count, *labels.shape[1:]), labels.dtype)
    for number, (index, source) in enumerate(itertools.islice(_draws(labels, rng), count)):
        moved_images[number], moved_labels[number] = _linear(images[index], *source), _nearest(labels[index], *source)
    return moved_images, moved_labels


def _draws(labels: np.ndarray, rng: np.random.Generator):
    """Endless (training slice index, its move) from `rng`, what every layout starts from: moved_layouts and moved_pairs
    draw them alike, so the n-th source image is moved exactly as the n-th layout."""
    while True:
        index = rng.integers(len(labels))
        yield index, move(labels.shape[1], rng)
