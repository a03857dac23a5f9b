"""Real scans beside the project (../shared/data): a few training steps on 5 IBSI soft-tissue-sarcoma MR cases (with
the body outline as a condition) and on the pyradiomics multi-class prostate phantom, then generation. Skipped with
a reason where the scans are absent."""

import json

import numpy as np
import SimpleITK as sitk
from ragan_testing import events_of, ragan, shared_case_folder

FEW_STEPS = ["--steps", "3", "--batch", "4", "--checkpoint-every", "3", "--preview-every", "3", "--log-every", "1"]


def train_and_generate(tmp_path, arguments, size: str) -> tuple[dict, sitk.Image]:
    result = ragan("train", *arguments, "--size", size, "--out", tmp_path / "run", *FEW_STEPS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert events_of(result.stdout)[-1]["reason"] == "completed"
    generated = ragan("generate", tmp_path / "run" / "model", "--count", "4", "--out", tmp_path / "synthetic")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    description = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    return description, sitk.ReadImage(str(tmp_path / "synthetic" / "synthetic_label.nrrd"))


def test_five_ibsi_mr_cases(tmp_path):
    folder = shared_case_folder("ibsi-sts-mr")
    cases = sorted(folder.glob("STS_*"))[:5]
    lines = ["image,label,case"] + [f"{c}/MR_T1_image.nii.gz,{c}/MR_T1_mask.nii.gz,{c.name}" for c in cases]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    # The labels hold the tumour only: the generator is given the limb's outline too (--body).
    description, label = train_and_generate(tmp_path, ["--pairs-file", tmp_path / "pairs.csv", "--body"], "128")
    assert description["modality"] == "mr" and description["training"]["cases"] == 5
    assert description["training"]["slices"] > 50 and description["body"] is True
    assert label.GetSize() == (128, 128, 4) and set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 1}
    with np.load(tmp_path / "run" / "model" / "labels.npz") as stored:
        shares = np.bincount(stored["labels"].ravel(), minlength=3) / stored["labels"].size
    assert shares[1] < shares[2] < 0.9, shares  # tumour, body (the limb around it), not the air around the limb


def test_pyradiomics_multi_class_prostate_phantom(tmp_path):
    folder = shared_case_folder("pyradiomics-cases")
    image, label = folder / "prostate_phantom_subvolume.nrrd", folder / "prostate_phantom_subvolume-label.nrrd"
    description, generated = train_and_generate(tmp_path, ["--pair", image, label], "64")
    assert [c["value"] for c in description["classes"]] == [0, 1, 7, 8, 9]
    assert set(np.unique(sitk.GetArrayFromImage(generated))) <= {0, 1, 7, 8, 9}
