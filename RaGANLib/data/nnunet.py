"""nnU-Net v2 raw datasets: find the cases of one, and write new ones.

Layout: `imagesTr/<case>_0000.<ext>`, `labelsTr/<case>.<ext>`, `dataset.json` with "channel_names", "labels"
(name -> value, background 0, values consecutive) and "numTraining". Needs only SimpleITK and numpy, so the Slicer
module can use it in Slicer's own Python.

A dataset mixing real and synthetic cases also gets `splits_final.json`: cross-validation folds that validate on real
cases only (nnU-Net's own random folds would validate on synthetic cases and report how well it copies the GAN).
"""

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RaGANLib.errors import BadInput, check_readable, read_json
from RaGANLib.results import outputs
from RaGANLib.training.runfolder import write_json_atomic

IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".tif", ".tiff", ".png")
DATASET_NAME = re.compile(r"Dataset\d{3}_[A-Za-z0-9_-]+")  # what nnU-Net finds in nnUNet_raw, e.g. Dataset501_Liver
SYNTHETIC_PREFIX = "synthetic_"  # case identifiers of synthetic cases; all others are real
FOLDS = 5  # nnU-Net's default number of cross-validation folds


def _ending(path: Path) -> str | None:
    return next((e for e in IMAGE_ENDINGS if path.name.lower().endswith(e)), None)


def read_dataset(folder: Path) -> tuple[list[tuple[str, Path, Path]], dict[str, str], str]:
    """Cases (case id, image, label), label names by value, and the first channel's name of a dataset folder."""
    folder = Path(folder)
    check_readable(folder, "dataset folder")
    if not folder.is_dir():
        raise BadInput(f"dataset folder '{folder}' is a file; give the folder that holds dataset.json")
    description = folder / "dataset.json"
    if not description.exists():
        raise BadInput(f"dataset folder '{folder}' has no dataset.json")
    meta = read_json(description, "dataset description")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise BadInput(f"'{description}' has no \"labels\" (name -> value)")
    try:
        names = {str(int(value)): name for name, value in labels.items() if int(value) != 0}
    except (TypeError, ValueError):
        raise BadInput(
            f"'{description}': label values must be integers (region-based labels are not supported)"
        ) from None
    channels = meta.get("channel_names") or meta.get("modality") or {}
    channel = str(channels.get("0", "")) if isinstance(channels, dict) else ""
    if isinstance(channels, dict) and len(channels) > 1:
        raise BadInput(f"'{description}' names {len(channels)} channels; RaGAN trains on single-channel images")
    ending = meta.get("file_ending")

    images, labels_dir = folder / "imagesTr", folder / "labelsTr"
    if not labels_dir.is_dir() or not images.is_dir():
        raise BadInput(f"dataset folder '{folder}' needs imagesTr/ and labelsTr/")
    cases = []
    for label_path in sorted(labels_dir.iterdir()):
        found = _ending(label_path)
        if found is None or label_path.name.startswith("."):
            continue
        case = label_path.name[: -len(found)]
        image_path = images / f"{case}_0000{found}"
        if not image_path.exists():
            raise BadInput(
                f"dataset '{folder}': label '{label_path.name}' has no image '{image_path.name}' in imagesTr"
            )
        cases.append((case, image_path, label_path))
    if not cases:
        raise BadInput(f"dataset folder '{folder}' has no labelled cases in labelsTr/")
    if ending and any(not p.name.endswith(ending) for _, _, p in cases):
        raise BadInput(f"'{description}' says file_ending '{ending}' but labelsTr holds other files")
    count = meta.get("numTraining")
    if count is not None and count != len(cases):
        raise BadInput(f"'{description}' says numTraining={count} but labelsTr holds {len(cases)} cases")
    return cases, names, channel


class DatasetWriter:
    """Writes cases into a new nnU-Net v2 raw dataset folder, or adds them to an existing one.

    writer = DatasetWriter(folder, channel_name="CT", class_names=["background", "liver", "tumour"])
    writer.add_case("synthetic_0000", image, label)   # SimpleITK images; label values 0..len(class_names)-1
    writer.finish()                                    # writes dataset.json; a new folder appears only now
    """

    ending = ".nii.gz"

    def __init__(self, folder: Path, channel_name: str, class_names: list[str]):
        self.folder = Path(folder)
        self.labels = {name: value for value, name in enumerate(class_names)}
        self.channel_name = channel_name
        self.existing = 0
        if (self.folder / "dataset.json").exists():
            _, names, channel = read_dataset(self.folder)
            wanted = {str(v): n for n, v in self.labels.items() if v}
            if names != wanted:
                raise BadInput(f"dataset '{self.folder}' has labels {names}, the new cases have {wanted}")
            self.existing = len(read_dataset(self.folder)[0])
            self.target = self.folder
        elif self.folder.exists() and any(self.folder.iterdir()):
            raise BadInput(f"'{self.folder}' exists and is not an nnU-Net dataset; choose an empty or new folder")
        else:
            self.target = outputs.new_staging(self.folder)  # marked: only RaGAN's own staging is ever removed
        (self.target / "imagesTr").mkdir(parents=True, exist_ok=True)
        (self.target / "labelsTr").mkdir(parents=True, exist_ok=True)
        self.added = 0

    def add_case(self, case_id: str, image: sitk.Image, label: sitk.Image) -> None:
        image_path = self.target / "imagesTr" / f"{case_id}_0000{self.ending}"
        label_path = self.target / "labelsTr" / f"{case_id}{self.ending}"
        if image_path.exists() or label_path.exists():
            raise BadInput(f"dataset '{self.folder}' already has a case '{case_id}'")
        values = np.unique(sitk.GetArrayViewFromImage(label))
        if values.min() < 0 or values.max() >= len(self.labels):
            raise BadInput(f"case '{case_id}': label values {values.tolist()} are not 0..{len(self.labels) - 1}")
        sitk.WriteImage(image, str(image_path), useCompression=True)
        sitk.WriteImage(sitk.Cast(label, sitk.sitkUInt8), str(label_path), useCompression=True)
        self.added += 1

    def finish(self) -> Path:
        meta = {
            "channel_names": {"0": self.channel_name},
            "labels": self.labels,
            "numTraining": self.existing + self.added,
            "file_ending": self.ending,
        }
        write_json_atomic(self.target / "dataset.json", meta)
        if self.target != self.folder:
            if self.folder.exists():
                self.folder.rmdir()
            outputs.move_into_place(self.target, self.folder)
        return self.folder

    def abandon(self) -> None:
        """Remove a dataset that was being made; cases added to an existing one stay."""
        if self.target != self.folder:
            outputs.discard(self.target)


def write_splits(folder: Path, folds: int = FOLDS) -> Path | None:
    """Write `splits_final.json` for the dataset in `folder`: up to `folds` folds, each validating on real cases only
    (real cases dealt to the folds in name order) and training on the other real cases and every synthetic case.

    Returns the file; None (writing nothing) when the dataset is all real (nnU-Net's own folds are right then) or
    all synthetic (nothing real to validate on), or when a splits_final.json is there that RaGAN's rule did not make
    (the user's own folds are left as they are)."""
    cases = [case for case, _, _ in read_dataset(folder)[0]]
    if len({c.startswith(SYNTHETIC_PREFIX) for c in cases}) < 2:
        return None
    path = Path(folder) / "splits_final.json"
    if path.exists():
        try:
            earlier = read_json(path, "nnU-Net splits")
            listed = sorted({case for fold in earlier for part in ("train", "val") for case in fold[part]})
        except (BadInput, TypeError, KeyError):
            return None
        if earlier != real_only_splits(listed, folds):
            return None
    write_json_atomic(path, real_only_splits(cases, folds))
    return path


def real_only_splits(cases: list[str], folds: int = FOLDS) -> list[dict]:
    """Cross-validation folds in nnU-Net's splits_final.json form whose validation cases are all real."""
    real = sorted(c for c in cases if not c.startswith(SYNTHETIC_PREFIX))
    synthetic = sorted(c for c in cases if c.startswith(SYNTHETIC_PREFIX))
    count = min(folds, len(real))
    splits = []
    for fold in range(count):
        validation = real[fold::count]
        splits.append({"train": [c for c in real if c not in validation] + synthetic, "val": validation})
    return splits
