"""Where results leave: sample synthetic image + label slices from a generator and write them out.

`ragan generate MODEL --count N --seed S --out DIR` writes
    DIR/synthetic_image.nrrd   N slices stacked as one volume, intensities in source units (HU for CT)
    DIR/synthetic_label.nrrd   the matching label volume with the original label values
    DIR/synthetic_label.seg.nrrd  the same labels as a Slicer segmentation: named, coloured segments
    DIR/nnunet/                the same cases as an nnU-Net v2 raw dataset (labels as consecutive class indices,
                               named in dataset.json, as nnU-Net requires)
    DIR/preview.png            the first slices, plain and with labels overlaid
    DIR/generation.json        how they were made: count, seed, rare components added (no paths)
A conditional model (`ragan train --mode conditional`) paints these images for its training labels, moved;
`--add-rare N` pastes up to N more components of each rare or thin class into each layout (RaGANLib.results.layouts).

`ragan generate MODEL --labels FILE_OR_FOLDER --out DIR` (conditional models) paints an image for every slice of
each given label volume (NRRD/NIfTI/MetaImage files, a folder of them, or an nnU-Net dataset's labelsTr) and writes
    DIR/images/NAME.nrrd       the synthetic volume on the grid of the label NAME (its size, spacing, orientation)
    DIR/labels/NAME.nrrd       that label, voxel for voxel as given
    DIR/preview.png            labelled slices on the model's grid, plain and with labels overlaid
Output files are made from arrays only: no header field of any training input reaches them. The stacks lie as the
training slices did (the model's slicing axis): axial stacks in an axial view, coronal ones in a coronal view.
"""

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RaGANLib.data.body import outline_for
from RaGANLib.data.inputs import label_values, read_image
from RaGANLib.data.nnunet import DatasetWriter
from RaGANLib.data.prepare import from_slices, resample_slices, to_slices
from RaGANLib.errors import BadInput, check_readable, free_bytes
from RaGANLib.events import Reporter
from RaGANLib.model import model_folder
from RaGANLib.model.model_info import ModelInfo
from RaGANLib.results import outputs, preview
from RaGANLib.results.layouts import MAX_ADD_RARE, moved_layouts, rare_and_thin_classes
from RaGANLib.results.segmentation_file import segmentation_header_lines
from RaGANLib.results.synthetic import (
    StackWriter,
    as_volume,
    sample,
    sample_chunks,
    source_intensities,
    to_source,
    value_types,
)
from RaGANLib.results.synthetic_share import default_count, share_figures, share_warning
from RaGANLib.seeds import stream
from RaGANLib.training.runfolder import write_json_atomic

CHANNEL_NAMES = {"ct": "CT", "mr": "MRI", "xray": "XRAY"}
OUTPUTS = {
    "image": "synthetic_image.nrrd",
    "label": "synthetic_label.nrrd",
    "segmentation": "synthetic_label.seg.nrrd",
    "nnunet": "nnunet",
    "preview": "preview.png",
    "settings": "generation.json",
}
NIFTI_HEADER = 352  # bytes before the voxels of a .nii file
SPACE_MARGIN = 1.1  # the estimate of what generate writes, with room for file system overhead


def training_layouts(model: Path, description: ModelInfo, seed: int, add_rare: int = 0):
    """What a model paints from without user labels: None for a joint model (it makes its own labels); for a
    conditional model, its training label slices drawn and moved (RaGANLib.results.layouts), in an order fixed by
    `seed`, with up to `add_rare` more components of each rare or thin class pasted into each."""
    check_add_rare(add_rare, model, description)
    if not description.conditional:
        return None
    labels = model_folder.training_labels(model, description)
    return moved_layouts(labels, stream(seed, "layouts"), add_rare, len(description.classes))


def check_add_rare(add_rare: int, model: Path, description: ModelInfo) -> None:
    """Refuse an --add-rare that cannot work: out of range, or for a joint model (it draws its own labels)."""
    if not 0 <= add_rare <= MAX_ADD_RARE:
        raise BadInput(f"--add-rare must be in 0..{MAX_ADD_RARE}, got {add_rare}")
    if add_rare and not description.conditional:
        raise BadInput(
            f"--add-rare {add_rare}: model '{model}' is a joint model, which draws its own labels; rare components "
            "can only be added to the layouts of a model trained with --mode conditional"
        )


def output_bytes(count: int, description: ModelInfo) -> int:
    """About how many bytes `generate` writes for `count` slices: the image stack, the label stack twice (plain and
    as a segmentation), the nnU-Net cases (counted uncompressed, an upper bound) and the preview."""
    image_type, label_type = value_types(description)
    pixels = int(np.prod(description.grid.shape))
    stacks = pixels * (image_type.itemsize + 2 * label_type.itemsize)
    cases = pixels * (image_type.itemsize + 1) + 2 * NIFTI_HEADER
    return count * (stacks + cases) + 4 * 1024 * 1024


def check_space(out: Path, count: int, description: ModelInfo) -> None:
    """Refuse, before anything is written, a `count` whose output would not fit on the disk that holds `out`."""
    needed = int(output_bytes(count, description) * SPACE_MARGIN)
    free = free_bytes(out)
    if free is not None and needed > free:
        raise BadInput(
            f"--count {count} needs up to {readable_size(needed)} for '{out}', but only {readable_size(free)} are free "
            "there; give a smaller --count or another --out"
        )


def readable_size(size_bytes: int) -> str:
    return f"{size_bytes / 1e12:,.1f} TB" if size_bytes >= 1e12 else f"{size_bytes / 1e9:.3g} GB"


def generate(model: Path, count: int | None, seed: int, out: Path, reporter: Reporter, add_rare: int = 0) -> dict:
    """Write `count` synthetic pairs from a model folder into `out`; returns the output paths. `count` None: a
    quarter of a training set of them and the model's training slices (RaGANLib.results.synthetic_share). `add_rare`:
    see training_layouts.

    `out` must be new, empty or an earlier `generate` output (see RaGANLib.results.outputs); only the entries in OUTPUTS
    are replaced there. Nothing is left behind when it fails."""
    if count is not None and count < 1:
        raise BadInput(f"--count must be at least 1, got {count}")
    out = Path(os.path.abspath(out))
    outputs.check(out, "generated")
    generator, description = model_folder.load(model)
    if count is None:
        count = default_count(description.training.slices)
    check_space(out, count, description)
    layouts = training_layouts(model, description, seed, add_rare)
    reporter.emit("started", model=str(model), count=count, seed=seed, out=str(out), add_rare=add_rare)

    with outputs.staged(out) as staging:
        pixel_counts = _write_outputs(staging, generator, description, count, seed, layouts)
        # No model path: a synthetic set is shared without the folders (and user or patient names) it came from.
        settings = {"count": count, "seed": seed, "add_rare": add_rare}
        if add_rare:
            labels = model_folder.training_labels(model, description)
            chosen = rare_and_thin_classes(labels, len(description.classes))
            settings["rare_classes"] = [description.classes[c].name for c in chosen]
        write_json_atomic(staging / OUTPUTS["settings"], settings)
        published = outputs.publish(staging, out, "generated", tuple(OUTPUTS.values()))
    paths = {key: str(published[name]) for key, name in OUTPUTS.items()}
    shares = class_shares(pixel_counts, description, reporter)
    synthetic_share = training_set_share(count, description, reporter)
    reporter.emit(
        "finished", count=count, seed=seed, outputs=paths, class_shares=shares, synthetic_share=synthetic_share
    )
    return paths


def training_set_share(count: int, description: ModelInfo, reporter: Reporter) -> dict:
    """The synthetic share of a training set made of these `count` slices and the model's training slices, with a
    notice when it exceeds what the benchmark supports for the model's mode (RaGANLib.results.synthetic_share)."""
    mode, real = description.mode, description.training.slices
    warning = share_warning(count, real, mode, "slices", " if they join the slices the model was trained on")
    if warning:
        reporter.notice(warning)
    return share_figures(count, real, mode)


def class_shares(pixel_counts: np.ndarray, description: ModelInfo, reporter: Reporter) -> dict:
    """Each class's share of the synthetic pixels next to its share of the training pixels, with a notice for every
    class drawn at less than half its training share: the rare class a user cares about is the one a GAN drops."""
    training = description.training.class_pixel_fraction
    found = pixel_counts / max(1, pixel_counts.sum())
    shares = {}
    for index, entry in enumerate(description.classes):
        share = {"synthetic": round(float(found[index]), 6), "training": training[index]}
        shares[entry.name] = share
        if share["synthetic"] < 0.5 * share["training"]:
            reporter.notice(
                f"class '{entry.name}' covers {share['synthetic']:.2%} of the synthetic pixels against "
                f"{share['training']:.2%} of the training pixels: the model draws it too rarely (train longer, or "
                "check the training labels)"
            )
    return shares


def _write_outputs(staging: Path, generator, description: ModelInfo, count: int, seed: int, layouts) -> np.ndarray:
    """The outputs in OUTPUTS, written into `staging` chunk by chunk; returns the pixel count of each class."""
    grid = description.grid
    image_type, label_type = value_types(description)
    stacks = [
        StackWriter(staging / OUTPUTS["image"], count, grid.size, image_type, grid),
        StackWriter(staging / OUTPUTS["label"], count, grid.size, label_type, grid),
        StackWriter(
            staging / OUTPUTS["segmentation"],
            count,
            grid.size,
            label_type,
            grid,
            extra=segmentation_header_lines(description, count),
        ),
    ]
    names = description.names
    cases = DatasetWriter(staging / OUTPUTS["nnunet"], CHANNEL_NAMES[description.modality], names)
    pixel_counts = np.zeros(len(names), dtype=np.int64)
    try:
        first, index = None, 0
        chunks = sample_chunks(generator, count, seed, description.latent_size, layouts, description.body)
        for images, labels in chunks:
            values, originals = to_source(images, labels, description)
            stacks[0].append(values)
            stacks[1].append(originals)
            stacks[2].append(originals)
            for offset in range(len(images)):
                cases.add_case(
                    f"synthetic_{index + offset:04d}",
                    as_volume(values[offset : offset + 1], grid),
                    as_volume(labels[offset : offset + 1], grid),
                )
            index += len(images)
            pixel_counts += np.bincount(labels.ravel(), minlength=len(names))
            first = first or (images[: preview.PREVIEW_SLICES], labels[: preview.PREVIEW_SLICES])
        for stack in stacks:
            stack.finish()
        cases.finish()
    except BaseException:
        for stack in stacks:
            stack.abandon()
        cases.abandon()
        raise
    picture = preview.slices_picture(*first, description.colors, f"synthetic, seed {seed}")
    preview.save_png(picture, staging / OUTPUTS["preview"])
    return pixel_counts


LABEL_OUTPUTS = {"images": "images", "labels": "labels", "preview": "preview.png"}
LABEL_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def label_files(path: Path) -> list[Path]:
    """The label volumes to paint: a file, the volumes in a folder, or those of an nnU-Net dataset's labelsTr."""
    check_readable(path, "labels")
    if not path.is_dir():
        return [path]
    folder = path / "labelsTr" if (path / "labelsTr").is_dir() else path
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(LABEL_ENDINGS))
    if not found:
        raise BadInput(f"labels folder '{folder}' holds no label volumes ({', '.join(LABEL_ENDINGS)})")
    return found


def volume_name(path: Path) -> str:
    ending = next((e for e in LABEL_ENDINGS if path.name.lower().endswith(e)), "")
    return path.name[: len(path.name) - len(ending)]


def generate_for_labels(model: Path, labels: Path, seed: int, out: Path, reporter: Reporter) -> dict:
    """Paint a synthetic volume for every label volume in `labels` with a conditional model; returns the outputs.
    Slice i of every volume gets the same latent vector, so one seed paints an edited and an unedited label alike
    wherever they agree. Same output rules as `generate`."""
    out = Path(os.path.abspath(out))
    outputs.check(out, "generated")
    files = label_files(Path(labels))
    names = [volume_name(f) for f in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BadInput(f"labels '{labels}' holds several volumes named {', '.join(twice)}; their outputs would clash")
    generator, description = model_folder.load(model)
    if not description.conditional:
        raise BadInput(
            f"model '{model}' is a joint model: it makes its own labels and cannot paint given ones; --labels needs "
            "a model trained with --mode conditional"
        )
    # A model conditioned on the body outline takes each slice's outline from its closest training layout.
    training = model_folder.training_labels(model, description) if description.body else None
    reporter.emit("started", model=str(model), labels=str(labels), volumes=len(files), seed=seed, out=str(out))
    from RaGANLib.quality.evaluate import Progress

    progress = Progress(reporter, len(files))
    with outputs.staged(out) as staging:
        shown = [], []
        for name in LABEL_OUTPUTS.values():
            if name != LABEL_OUTPUTS["preview"]:
                (staging / name).mkdir()
        for path, name in zip(files, names):
            images, indices = _paint_volume(generator, description, path, seed, staging, name, training)
            labelled = indices.reshape(len(indices), -1).any(axis=1)
            shown[0].extend(images[labelled][: preview.PREVIEW_SLICES - len(shown[0])])
            shown[1].extend(indices[labelled][: preview.PREVIEW_SLICES - len(shown[1])])
            progress.advance(f"painted {name}")
        if shown[0]:
            picture = preview.slices_picture(
                np.stack(shown[0]), np.stack(shown[1]), description.colors, f"painted, seed {seed}"
            )
            preview.save_png(picture, staging / LABEL_OUTPUTS["preview"])
        published = outputs.publish(staging, out, "generated", tuple(LABEL_OUTPUTS.values()))
    paths = {key: str(published[name]) for key, name in LABEL_OUTPUTS.items() if name in published}
    return reporter.emit("finished", volumes=len(files), seed=seed, outputs=paths)


def _paint_volume(generator, description: ModelInfo, path: Path, seed: int, staging: Path, name: str, training=None):
    """Paint one label volume: its slices along the model's axis, resampled (nearest) onto the model's slice grid,
    painted, and the images resampled back onto the label's grid. Returns the painted slices on the model's grid.
    `training`: a body model's training conditions, which the slices' outlines come from (body.outline_for)."""
    label = read_image(path, "label")
    flat = label.GetSize()[2] == 1  # a 2D label keeps its own orientation, as in training
    oriented = label if flat else sitk.DICOMOrient(label, "LPS")
    values = label_values(oriented, path)
    known = {c.value: c.index for c in description.classes}
    unknown = sorted(set(np.unique(values).tolist()) - set(known))
    if unknown:
        listed = ", ".join(f"{c.value} ({c.name})" for c in description.classes)
        raise BadInput(
            f"label '{path}' holds the value(s) {', '.join(map(str, unknown[:10]))}, which the model does not know; "
            f"it knows {listed}"
        )
    lookup = np.zeros(max(known) + 1, dtype=np.uint8)
    lookup[list(known)] = list(known.values())
    grid = description.grid
    stack, pixel_spacing, _ = to_slices(lookup[values], oriented.GetSpacing(), grid.axis)
    indices = resample_slices(stack, pixel_spacing, grid.spacing, grid.shape, linear=False)
    conditions = indices if training is None else outline_for(indices, training, len(description.classes))
    images, _ = sample(generator, len(indices), seed, description.latent_size, iter(conditions))
    back = resample_slices(images, grid.spacing, pixel_spacing, stack.shape[1:], linear=True)
    painted = sitk.GetImageFromArray(source_intensities(from_slices(back, grid.axis), description))
    painted.CopyInformation(oriented)
    if not flat:
        orientation = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(label.GetDirection())
        painted = sitk.DICOMOrient(painted, orientation)
        painted.CopyInformation(label)
    sitk.WriteImage(painted, str(staging / LABEL_OUTPUTS["images"] / f"{name}.nrrd"), useCompression=True)
    sitk.WriteImage(label, str(staging / LABEL_OUTPUTS["labels"] / f"{name}.nrrd"), useCompression=True)
    return images, indices
