"""Synthetic slices from a generator: drawn in a fixed latent order, turned into source units (HU for CT, the
original label values), and written as NRRD stacks chunk by chunk. Used by `generate`, the training previews, the
best-model scoring, `evaluate` and the demo; nothing here writes a model or reads one.
"""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RaGANLib.data.body import without_body
from RaGANLib.data.prepare import slice_directions
from RaGANLib.model.model_info import ModelInfo, SliceGrid

BATCH = 32  # slices per generator call
NRRD_TYPES = {"int16": "short", "float32": "float", "uint8": "unsigned char", "uint16": "unsigned short"}


def sample_chunks(generator, count: int, seed: int, latent_size: int, layouts=None, body: bool = False):
    """`count` synthetic slices as successive ([-1, 1] images, class indices) chunks of up to BATCH slices.
    A conditional generator needs `layouts`: an iterator of label slices (class indices), taken one per slice.
    `body`: the generator's last condition class is the body outline (RaGANLib/data/body.py), background in the
    class indices returned.

    Latents are drawn in order from one generator seeded with `seed`, so slice i is the same whatever `count` is
    and however the slices are chunked; memory does not grow with `count`."""
    rng = np.random.default_rng(seed)
    for start in range(0, count, BATCH):
        latents = rng.standard_normal((min(BATCH, count - start), latent_size)).astype(np.float32)
        if layouts is None:
            pairs = np.asarray(generator(latents, training=False))
            yield np.clip(pairs[..., 0], -1, 1), np.argmax(pairs[..., 1:], axis=-1).astype(np.uint8)
        else:
            labels = np.stack([next(layouts) for _ in latents]).astype(np.uint8)
            conditions = generator.input_shape[0][-1]
            one_hot = np.eye(conditions, dtype=np.float32)[labels]
            images = np.clip(np.asarray(generator([one_hot, latents], training=False))[..., 0], -1, 1)
            yield images, without_body(labels, conditions - 1) if body else labels


def sample(
    generator, count: int, seed: int, latent_size: int, layouts=None, body: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """`count` synthetic slices as ([-1, 1] images, class indices); slice i is the same whatever `count` is. `body`:
    see sample_chunks."""
    images, labels = zip(*sample_chunks(generator, count, seed, latent_size, layouts, body))
    return np.concatenate(images), np.concatenate(labels)


def value_types(description: ModelInfo) -> tuple[np.dtype, np.dtype]:
    """Pixel types of the image (int16 HU for CT, else float32) and of the label (by the largest class value)."""
    image = np.dtype(np.int16 if description.modality == "ct" else np.float32)
    label = np.dtype(np.uint8 if max(c.value for c in description.classes) < 256 else np.uint16)
    return image, label


def to_source(images: np.ndarray, labels: np.ndarray, description: ModelInfo) -> tuple[np.ndarray, np.ndarray]:
    """Intensities in source units (int16 HU for CT) and labels with their original values."""
    _, label_type = value_types(description)
    lookup = np.array([c.value for c in description.classes], dtype=label_type)
    return source_intensities(images, description), lookup[labels]


def source_intensities(images: np.ndarray, description: ModelInfo) -> np.ndarray:
    """[-1, 1] images in source units (int16 HU for CT)."""
    image_type, _ = value_types(description)
    values = description.intensity.inverse(images)
    return (np.round(values) if image_type == np.int16 else values).astype(image_type)


def as_volume(slices: np.ndarray, grid: SliceGrid) -> sitk.Image:
    """A stack of slices as a volume with the grid's pixel spacing, slice thickness and slicing axis' orientation."""
    volume = sitk.GetImageFromArray(np.ascontiguousarray(slices))
    volume.SetSpacing((float(grid.spacing[1]), float(grid.spacing[0]), float(grid.thickness)))
    columns, rows, stack = slice_directions(grid.axis)
    volume.SetDirection([value for row in zip(columns, rows, stack) for value in row])  # row-major 3x3
    return volume


class StackWriter:
    """An uncompressed NRRD volume of `count` slices written chunk by chunk, so that a stack larger than
    memory can be written; the file appears under its name only when complete. `extra` header lines (`key:=value`)
    follow the standard fields."""

    def __init__(self, path: Path, count: int, size: int, dtype: np.dtype, grid: SliceGrid, extra=()):
        self.path, self.count, self.dtype, self.written = Path(path), count, np.dtype(dtype), 0
        self.temporary = self.path.with_name(f".{self.path.name}.tmp.nrrd")
        rows, columns = grid.spacing
        steps = zip(slice_directions(grid.axis), (columns, rows, grid.thickness))
        directions = " ".join("(" + ",".join(repr(float(d * length)) for d in step) + ")" for step, length in steps)
        header = [
            "NRRD0004",
            f"type: {NRRD_TYPES[self.dtype.name]}",
            "dimension: 3",
            "space: left-posterior-superior",
            f"sizes: {size} {size} {count}",
            f"space directions: {directions}",
            "kinds: domain domain domain",
            "endian: little",
            "encoding: raw",
            "space origin: (0,0,0)",
            *extra,
        ]
        self.handle = open(self.temporary, "wb")
        self.handle.write(("\n".join(header) + "\n\n").encode("ascii"))

    def append(self, slices: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(slices, dtype=self.dtype.newbyteorder("<")).tobytes())
        self.written += len(slices)

    def finish(self) -> Path:
        if self.written != self.count:
            raise RuntimeError(f"{self.path.name}: {self.written} slices written, {self.count} declared")
        self.handle.close()
        self.temporary.replace(self.path)
        return self.path

    def abandon(self) -> None:
        self.handle.close()
        self.temporary.unlink(missing_ok=True)


def write_volumes(folder: Path, values, originals, description: ModelInfo, stem: str = "synthetic") -> dict:
    """Write image and label stacks (in source units, see `to_source`) as uncompressed NRRD; returns their paths."""
    paths = {}
    for key, array in (("image", values), ("label", originals)):
        writer = StackWriter(folder / f"{stem}_{key}.nrrd", len(array), array.shape[-1], array.dtype, description.grid)
        try:
            writer.append(array)
            paths[key] = str(writer.finish())
        except BaseException:
            writer.abandon()
            raise
    return paths
