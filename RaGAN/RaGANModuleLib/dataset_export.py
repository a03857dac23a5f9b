"""Real and synthetic cases -> an nnU-Net v2 raw dataset, the usual next step: train a segmentation network on them.

    export_nnunet(target, model_folder, real_pairs=[(image.nrrd, label.nrrd)], synthetic_dataset=out / "nnunet")

Uses RaGANLib's DatasetWriter (SimpleITK + numpy only, so it runs in Slicer's Python). Real labels carry original
values and are remapped to the model's class indices; synthetic cases come from `ragan generate`'s own nnU-Net
folder. A new dataset appears only when complete; adding to an existing dataset needs the same label names.
"""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RaGANModuleLib.locations import import_ragan_lib
from RaGANModuleLib.results import read_model_info


def export_nnunet(
    target: Path,
    model_folder: Path,
    real_pairs: list[tuple[Path, Path]] = (),
    synthetic_dataset: Path | None = None,
) -> Path:
    """Write the cases into `target` (new, or an existing dataset with the same labels); returns the folder."""
    import_ragan_lib()
    from RaGANLib.nnunet import DatasetWriter, read_dataset

    info = read_model_info(model_folder)
    class_names = [c["name"] for c in info["classes"]]  # in index order, as the schema requires
    index_of_value = {c["value"]: c["index"] for c in info["classes"]}
    writer = DatasetWriter(Path(target), channel_name=info["modality"].upper(), class_names=class_names)
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
                writer.add_case(f"synthetic_{start + number:04d}", image, label)
        return writer.finish()
    except Exception:
        writer.abandon()
        raise
