"""Real and synthetic cases -> an nnU-Net v2 raw dataset, the usual next step: train a segmentation network on them.

    folder, splits = export_nnunet(target, model_folder, real_pairs=[(image.nrrd, label.nrrd)], synthetic_dataset=...)

Uses RaGANLib's DatasetWriter (SimpleITK + numpy only, so it runs in Slicer's Python). Real labels carry original
values and are remapped to the model's class indices; synthetic cases come from `ragan generate`'s own nnU-Net
folder. A new dataset appears only when complete; adding to an existing dataset needs the same label names. The
folder must be named as nnU-Net finds datasets (DatasetNNN_Name); `splits_final.json` keeps synthetic cases out of
every validation fold. `synthetic_share_warning` says when the synthetic cases swamp the real ones.
"""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RaGANModuleLib.locations import import_ragan_lib
from RaGANModuleLib.results import read_model


def export_nnunet(
    target: Path,
    model_folder: Path,
    real_pairs: list[tuple[Path, Path]] = (),
    synthetic_dataset: Path | None = None,
) -> tuple[Path, Path | None]:
    """Write the cases into `target` (new, or an existing dataset with the same labels); returns the folder and its
    splits_final.json (None unless it holds real and synthetic cases, or when it holds the user's own splits)."""
    import_ragan_lib()
    from RaGANLib.data.nnunet import DATASET_NAME, SYNTHETIC_PREFIX, DatasetWriter, read_dataset, write_splits

    if not DATASET_NAME.fullmatch(Path(target).name):
        raise ValueError(
            f"nnU-Net finds only datasets named DatasetNNN_Name (three digits, then a name), e.g. Dataset501_RaGAN; "
            f"'{Path(target).name}' is not such a name"
        )
    if not real_pairs and synthetic_dataset is None:  # refused before anything is written
        raise ValueError(
            f"no cases to export to '{Path(target).name}': no real cases (the model's run folder names none, or they "
            "were left out) and no synthetic ones (generate some first, or include them)"
        )
    info = read_model(model_folder)
    class_names = info.names  # in index order, as the schema requires
    index_of_value = {c.value: c.index for c in info.classes}
    writer = DatasetWriter(Path(target), channel_name=info.modality.upper(), class_names=class_names)
    start = writer.existing
    try:
        for number, (image_path, label_path) in enumerate(real_pairs):
            image = sitk.ReadImage(str(image_path))
            label = sitk.ReadImage(str(label_path))
            values = sitk.GetArrayFromImage(label)
            remapped = np.zeros(values.shape, dtype=np.uint8)
            for value, index in index_of_value.items():
                remapped[values == value] = index
            indexed = sitk.GetImageFromArray(remapped)
            indexed.CopyInformation(label)
            writer.add_case(f"real_{start + number:04d}", image, indexed)
        if synthetic_dataset is not None:
            cases, names, _ = read_dataset(Path(synthetic_dataset))
            wanted = {str(i): n for i, n in enumerate(class_names) if i}
            if names != wanted:
                raise ValueError(f"synthetic dataset '{synthetic_dataset}' has labels {names}, the model {wanted}")
            for number, (_, image_path, label_path) in enumerate(cases):
                image, label = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(label_path))
                writer.add_case(f"{SYNTHETIC_PREFIX}{start + number:04d}", image, label)
        folder = writer.finish()
    except Exception:
        writer.abandon()
        raise
    return folder, write_splits(folder)


def run_pairs(model_folder: Path) -> list[tuple[Path, Path]]:
    """The (image, label) files a model was trained on, from the spec.json of its run folder (the model folder's
    parent), read by the trainer's own reader; none when the run has no spec.json or named a dataset or pairs file.
    A spec.json that cannot be read raises ValueError with the reason."""
    spec = Path(model_folder).parent / "spec.json"
    if not spec.is_file():
        return []
    import_ragan_lib()
    from RaGANLib.errors import BadInput
    from RaGANLib.spec import TrainSpec

    try:
        return [(Path(image), Path(label)) for image, label in TrainSpec.load(spec).pairs]
    except BadInput as error:
        raise ValueError(str(error)) from None


def synthetic_share_warning(folder: Path, model_folder: Path) -> str | None:
    """A warning in plain words when the nnU-Net dataset in `folder` holds more synthetic cases beside its real ones
    than the benchmark supports for the model's mode (RaGANLib/results/synthetic_share.py), else None. Counted in cases:
    nnU-Net draws every case equally often, so the share of synthetic cases is the share of its batches."""
    import_ragan_lib()
    from RaGANLib.data.nnunet import SYNTHETIC_PREFIX, read_dataset
    from RaGANLib.results.synthetic_share import share_warning

    cases = [case for case, _, _ in read_dataset(Path(folder))[0]]
    synthetic = sum(case.startswith(SYNTHETIC_PREFIX) for case in cases)
    drawn = " (nnU-Net draws every case equally often, so this is the synthetic share of its batches)"
    return share_warning(synthetic, len(cases) - synthetic, read_model(model_folder).mode, "cases", drawn)
