"""Where data comes in: find the training cases and read each image and label, refusing what cannot be used.

Cases come from an nnU-Net v2 raw dataset folder, a CSV/JSON list of pairs, or explicit pairs. Images may be NIfTI,
NRRD, MHA, 2D formats (X-ray) or a DICOM series folder. Every refusal names the file and the problem.
"""

import csv
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RaGANLib.data import nnunet
from RaGANLib.data.image_files import check_image_file
from RaGANLib.errors import BadInput, check_readable, read_json
from RaGANLib.spec import TrainSpec


@dataclasses.dataclass
class Case:
    """One training case: an image and its label. `name` appears in messages only, never in outputs."""

    name: str
    image: Path
    label: Path


def find_cases(spec: TrainSpec) -> tuple[list[Case], dict[str, str], str]:
    """The cases of a spec, the label names (by original value) and channel name its dataset.json gives (or {}
    and "" for pairs)."""
    names, channel = {}, ""
    if spec.dataset:
        found, names, channel = nnunet.read_dataset(Path(spec.dataset))
        cases = [Case(case, image, label) for case, image, label in found]
    elif spec.pairs_file:
        cases = read_pairs_file(Path(spec.pairs_file))
    else:
        cases = [Case(Path(image).name, Path(image), Path(label)) for image, label in spec.pairs]
    return cases, names, channel


def read_pairs_file(path: Path) -> list[Case]:
    """Pairs from a CSV (columns image,label[,case], header optional) or a JSON list; paths relative to the file."""
    check_readable(path, "pairs file")
    if not path.is_file():
        raise BadInput(f"pairs file '{path}' is a folder; give a .csv or .json file")
    base = path.resolve().parent
    rows = []
    if path.suffix.lower() == ".json":
        entries = read_json(path, "pairs file")
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and "image" in e and "label" in e for e in entries
        ):
            raise BadInput(f'pairs file \'{path}\' must be a JSON list of objects with "image" and "label"')
        rows = [(e["image"], e["label"], e.get("case")) for e in entries]
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")  # Excel starts a CSV with a byte order mark
        except (OSError, UnicodeDecodeError) as error:
            raise BadInput(f"pairs file '{path}' cannot be read: {error}") from None
        for number, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
                continue
            if number == 1 and [c.strip().lower() for c in row[:2]] == ["image", "label"]:
                continue
            if len(row) not in (2, 3):
                raise BadInput(f"pairs file '{path}' line {number}: expected image,label[,case], got {len(row)} fields")
            rows.append((row[0].strip(), row[1].strip(), row[2].strip() if len(row) == 3 else None))
    if not rows:
        raise BadInput(f"pairs file '{path}' lists no image,label pairs")
    return [Case(case or Path(image).name, base / image, base / label) for image, label, case in rows]


def file_hash(path: Path) -> str:
    """SHA-256 of a file, or of all files of a DICOM folder in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_image(path: Path, role: str) -> sitk.Image:
    """Read a volume or 2D image (file or DICOM series folder) as a single-channel 3D image."""
    what = f"{role} '{path}'"
    check_readable(path, role)
    try:
        if path.is_dir():
            series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise BadInput(f"{what} is a folder without a DICOM series")
            if len(series) > 1:
                raise BadInput(f"{what} holds {len(series)} DICOM series; point to a folder with one")
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0]))
            image = reader.Execute()
        else:
            check_image_file(path, role)
            image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown format"
        raise BadInput(f"{what} cannot be read: {reason}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise BadInput(
            f"{what} has {image.GetNumberOfComponentsPerPixel()} values per voxel (RGB or vector image); "
            "RaGAN needs a single-channel image"
        )
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    elif image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    elif image.GetDimension() != 3:
        raise BadInput(f"{what} is {image.GetDimension()}D {image.GetSize()}; give a 3D volume or a 2D image")
    return image


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-3, atol=1e-4)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-2 * min(a.GetSpacing()))
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-3)
    )


def _bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    corners = [
        image.TransformContinuousIndexToPhysicalPoint([c * (n - 1) for c, n in zip(corner, image.GetSize())])
        for corner in np.ndindex(2, 2, 2)
    ]
    return np.min(corners, axis=0), np.max(corners, axis=0)


def _describe_grid(image: sitk.Image) -> str:
    size = "x".join(str(n) for n in image.GetSize())
    spacing = "x".join(f"{s:.3g}" for s in image.GetSpacing())
    return f"{size} voxels of {spacing} mm"


def label_values(label: sitk.Image, path: Path) -> np.ndarray:
    """The voxels of a label image ([z, y, x], its integer type), refused unless they are whole class numbers >= 0."""
    values = sitk.GetArrayFromImage(label)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise BadInput(f"label '{path}' has non-integer values; a label must hold whole class numbers")
        values = values.astype(np.int64)
    if values.min() < 0:
        raise BadInput(f"label '{path}' has negative values (lowest {values.min()}); use 0 for background")
    return values


def read_case(case: Case, notices: list[str]) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Image (its integer type, or float32) and label (its integer type) arrays indexed [z, y, x] in LPS orientation,
    and spacing (x, y, z). Arrays keep the file's integer types: a float or int64 copy of a CT costs 2-4x its size.
    Notices about the case are appended to `notices`, without its paths."""
    image = read_image(case.image, "image")
    label = read_image(case.label, "label")
    if image.GetSize()[2] == 1 and image.GetDimension() == 3 and label.GetSize()[2] == 1:
        label.SetOrigin(image.GetOrigin())  # 2D images carry no slice position; only in-plane geometry counts
        label.SetDirection(image.GetDirection())
    if not _same_grid(image, label):
        low_i, high_i = _bounds(image)
        low_l, high_l = _bounds(label)
        tolerance = np.array(image.GetSpacing()) / 2
        if np.any(high_l + tolerance < low_i) or np.any(high_i + tolerance < low_l):
            raise BadInput(
                f"label '{case.label}' ({_describe_grid(label)}) does not overlap image '{case.image}' "
                f"({_describe_grid(image)}) in space; they cannot be paired"
            )
        label = sitk.Resample(label, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label.GetPixelID())
        notices.append(  # notices go into the run folder: no paths (they often hold patient names)
            f"the label ({_describe_grid(label)}) is on another grid than the image ({_describe_grid(image)}): "
            "resampled onto the image grid (nearest neighbour)"
        )
    if image.GetSize()[2] > 1:  # 2D images keep their own orientation
        image, label = sitk.DICOMOrient(image, "LPS"), sitk.DICOMOrient(label, "LPS")

    spacing = tuple(image.GetSpacing())
    pixels = sitk.GetArrayFromImage(image)
    del image  # one copy of the volume in memory, not two
    if pixels.dtype.kind == "f":
        pixels = pixels.astype(np.float32, copy=False)
        if not np.all(np.isfinite(pixels)):
            bad = int(np.size(pixels) - np.count_nonzero(np.isfinite(pixels)))
            raise BadInput(f"image '{case.image}' has {bad} NaN or infinite voxels")
    values = label_values(label, case.label)
    del label
    if not values.any():
        raise BadInput(f"label '{case.label}' has no foreground: every voxel is 0")
    return pixels, values, spacing
