"""Where results leave: sample synthetic image + label slices from a generator and write them out.

`ragan generate MODEL --count N --seed S --out DIR` writes
    DIR/synthetic_image.nrrd   N slices stacked as one volume, intensities in source units (HU for CT)
    DIR/synthetic_label.nrrd   the matching label volume with the original label values
    DIR/nnunet/                the same cases as an nnU-Net v2 raw dataset (labels as consecutive class indices,
                               named in dataset.json, as nnU-Net requires)
    DIR/preview.png            the first slices, plain and with labels overlaid
Output files are made from arrays only: no header field of any training input reaches them.
"""

import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RaGANLib import model_folder, preview
from RaGANLib.errors import BadInput
from RaGANLib.events import Reporter
from RaGANLib.nnunet import DatasetWriter
from RaGANLib.prepare import Normalisation

BATCH = 32
CHANNEL_NAMES = {"ct": "CT", "mr": "MRI", "xray": "XRAY"}
OUTPUTS = {
    "image": "synthetic_image.nrrd",
    "label": "synthetic_label.nrrd",
    "nnunet": "nnunet",
    "preview": "preview.png",
}


def sample(generator, count: int, seed: int, latent_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` synthetic slices as ([-1, 1] images, class indices); slice i is the same whatever `count` is."""
    latents = np.random.default_rng(seed).standard_normal((count, latent_size)).astype(np.float32)
    images, labels = [], []
    for start in range(0, count, BATCH):
        pairs = np.asarray(generator(latents[start : start + BATCH], training=False))
        images.append(np.clip(pairs[..., 0], -1, 1))
        labels.append(np.argmax(pairs[..., 1:], axis=-1).astype(np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def to_source(images: np.ndarray, labels: np.ndarray, description: dict) -> tuple[np.ndarray, np.ndarray]:
    """Intensities in source units (int16 HU for CT) and labels with their original values."""
    intensity = description["intensity"]
    values = Normalisation(intensity["low"], intensity["high"]).inverse(images)
    values = np.round(values).astype(np.int16) if description["modality"] == "ct" else values.astype(np.float32)
    lookup = np.array([c["value"] for c in description["classes"]], dtype=np.uint16)
    originals = lookup[labels]
    return values, originals.astype(np.uint8 if originals.max(initial=0) < 256 else np.uint16)


def as_volume(slices: np.ndarray, description: dict) -> sitk.Image:
    """A stack of slices as a volume with the model's pixel spacing and slice thickness, identity orientation."""
    volume = sitk.GetImageFromArray(np.ascontiguousarray(slices))
    spacing = description["slice"]["spacing"]
    volume.SetSpacing((float(spacing[1]), float(spacing[0]), float(description["slice"]["thickness"])))
    return volume


def write_volumes(folder: Path, values, originals, description: dict, stem: str = "synthetic") -> dict:
    """Write image and label stacks (in source units, see `to_source`) as uncompressed NRRD; returns their paths."""
    paths = {"image": folder / f"{stem}_image.nrrd", "label": folder / f"{stem}_label.nrrd"}
    for key, array in (("image", values), ("label", originals)):
        temporary = paths[key].with_name(f".{paths[key].name}.tmp.nrrd")
        sitk.WriteImage(as_volume(array, description), str(temporary), useCompression=False)
        temporary.replace(paths[key])
    return {k: str(v) for k, v in paths.items()}


def preview_picture(images, labels, description: dict, title: str):
    colors = [c["color"] for c in description["classes"]]
    return preview.titled([(title, preview.grid(images[:16], labels[:16], colors))])


def generate(model: Path, count: int, seed: int, out: Path, reporter: Reporter) -> dict:
    """Write `count` synthetic pairs from a model folder into `out`; returns the output paths."""
    if count < 1:
        raise BadInput(f"--count must be at least 1, got {count}")
    generator, description = model_folder.load(model)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"output '{out}' exists and is not a folder")
    reporter.emit("started", model=str(model), count=count, seed=seed, out=str(out))
    images, labels = sample(generator, count, seed, description["latent_size"])

    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    values, originals = to_source(images, labels, description)
    write_volumes(staging, values, originals, description)
    names = [c["name"] for c in description["classes"]]
    writer = DatasetWriter(staging / "nnunet", CHANNEL_NAMES[description["modality"]], names)
    for index in range(count):
        writer.add_case(
            f"synthetic_{index:04d}",
            as_volume(values[index : index + 1], description),
            as_volume(labels[index : index + 1], description),
        )
    writer.finish()
    preview.save_png(preview_picture(images, labels, description, f"synthetic, seed {seed}"), staging / "preview.png")

    out.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for key, name in OUTPUTS.items():
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        (staging / name).replace(target)
        outputs[key] = str(target)
    staging.rmdir()
    reporter.emit("finished", count=count, seed=seed, outputs=outputs)
    return outputs
