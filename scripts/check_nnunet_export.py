"""Check that a dataset as RaGAN exports it is one nnU-Net accepts, with nnU-Net's own tools: real phantom volumes plus
synthetic one-slice cases (written with `ragan generate`'s geometry), RaGAN's splits_final.json, then
`nnUNetv2_plan_and_preprocess --verify_dataset_integrity` for the 2d configuration and nnU-Net's trainer reading the
folds. Not part of CI: it needs nnunetv2 (and torch) in the Python that runs it.

    python scripts/check_nnunet_export.py            # prints what nnU-Net said; exit 0 when every check holds
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from RaGANLib.data import phantom  # noqa: E402 (after the repository is on the path)
from RaGANLib.data.nnunet import DatasetWriter, write_splits  # noqa: E402
from RaGANLib.errors import read_json  # noqa: E402
from RaGANLib.model.model_info import SliceGrid  # noqa: E402
from RaGANLib.results.synthetic import as_volume  # noqa: E402

NAME = "Dataset501_RaGANCheck"
REAL, SYNTHETIC = 6, 20


def write_dataset(raw: Path) -> Path:
    """6 real phantom volumes and 20 one-slice synthetic cases (phantom slices standing in for generated ones)."""
    writer = DatasetWriter(raw / NAME, "CT", ["background", *phantom.CLASS_NAMES.values()])
    grid = SliceGrid(64, (phantom.SPACING[1], phantom.SPACING[0]), phantom.SPACING[2], "axial")
    for number in range(REAL):
        image, label = phantom.make_case(number, (16, 64, 64))
        volumes = [sitk.GetImageFromArray(a) for a in (image, label)]
        for volume in volumes:
            volume.SetSpacing(phantom.SPACING)
        writer.add_case(f"real_{number:04d}", *volumes)
    for number in range(SYNTHETIC):
        image, label = phantom.make_case(100 + number, (4, 64, 64))
        writer.add_case(f"synthetic_{number:04d}", as_volume(image[2:3], grid), as_volume(label[2:3], grid))
    folder = writer.finish()
    write_splits(folder)
    return folder


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="ragan-nnunet-check-"))
    try:
        return check(root)
    finally:
        shutil.rmtree(root)


def check(root: Path) -> int:
    paths = {key: root / key for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    environment = dict(os.environ, **{key: str(path) for key, path in paths.items()})
    os.environ.update(environment)  # nnU-Net reads its folders when imported
    folder = write_dataset(paths["nnUNet_raw"])
    command = ["nnUNetv2_plan_and_preprocess", "-d", "501", "-c", "2d", "-np", "1", "--verify_dataset_integrity"]
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
    if result.returncode != 0:
        print(f"FAILED: nnUNetv2_plan_and_preprocess exited with {result.returncode}")
        return 1
    shutil.copy(folder / "splits_final.json", paths["nnUNet_preprocessed"] / NAME / "splits_final.json")

    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    preprocessed = paths["nnUNet_preprocessed"] / NAME
    plans = read_json(preprocessed / "nnUNetPlans.json", "nnU-Net plans")
    dataset = read_json(preprocessed / "dataset.json", "nnU-Net dataset description")
    problems = []
    for fold in range(5):
        fold_plans = {**plans, "continue_training": False}  # what nnUNetv2_train adds (nnunetv2 2.8)
        trainer = nnUNetTrainer(fold_plans, "2d", fold, dataset, device=torch.device("cpu"))
        training, validation = trainer.do_split()
        synthetic_in_validation = [c for c in validation if c.startswith("synthetic_")]
        print(f"fold {fold}: {len(training)} training cases, validation {sorted(validation)}")
        if synthetic_in_validation or len(training) + len(validation) != REAL + SYNTHETIC:
            problems.append(f"fold {fold}: validation {validation}")
    made = {p.stem for p in (preprocessed / "nnUNetPlans_2d").glob("*.pkl")}  # one per preprocessed case
    print(f"preprocessed for the 2d configuration: {len(made)} cases")
    if len(made) != REAL + SYNTHETIC:
        problems.append(f"{len(made)} cases preprocessed, not {REAL + SYNTHETIC}")
    print("FAILED: " + "; ".join(problems) if problems else f"OK: nnU-Net accepts {NAME}; folds validate on real cases")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
