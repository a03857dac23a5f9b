"""Segmentation -> synthetic scan with a conditional model: the module writes a segmentation with the model's label
values on its source scan's grid, starts `generate --labels` through the child-process protocol, and loads the painted
volume back on that grid, on a real MRML scene (slicer-core).

The first tests use a model folder's model.json only (no TensorFlow); the last trains a tiny conditional model from the
scene with the real trainer and paints the case's own segmentation.
"""

import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from RaGANModuleLib import painting, scene_files, training_cases
from RaGANModuleLib.trainer_job import JobState, TrainerJob, paint_arguments, train_arguments
from slicer_test_support import TINY_TRAINING, needs_trainer

CLASSES = [
    {"index": 0, "value": 0, "name": "background", "color": [0, 0, 0]},
    {"index": 1, "value": 1, "name": "liver", "color": [0.9, 0.4, 0.3]},
    {"index": 2, "value": 7, "name": "tumour", "color": [0.2, 0.8, 0.1]},
]


def model_folder(tmp_path, mode="conditional"):
    folder = tmp_path / "model"
    folder.mkdir()
    info = {
        "format": 2,
        "generator": "generator.keras",
        "latent_size": 128,
        "mode": mode,
        "classes": CLASSES,
        "modality": "ct",
        "intensity": {"low": -1000.0, "high": 1000.0},
        "slice": {"size": 64, "spacing": [0.7, 0.7], "thickness": 3.0, "axis": "axial"},
        "training": {"cases": 2, "slices": 10, "steps": 100, "batch": 4, "seed": 0},
    }
    if mode == "conditional":
        info["labels"] = "labels.npz"
    (folder / "model.json").write_text(json.dumps(info))
    return folder


def test_segmentation_is_written_on_its_scans_grid_with_the_models_label_values(scene, ct_with_segmentation, tmp_path):
    volume, segmentation, labels = ct_with_segmentation
    path = painting.export_label_for_model(scene, segmentation, volume, model_folder(tmp_path), tmp_path / "labels")

    written = sitk.ReadImage(str(path))
    scan = sitk.ReadImage(str(scene_files.write_volume(volume, tmp_path / "scan.nrrd")))
    assert written.GetSize() == scan.GetSize()
    assert np.allclose(written.GetSpacing(), scan.GetSpacing()) and np.allclose(written.GetOrigin(), scan.GetOrigin())
    assert np.allclose(written.GetDirection(), scan.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(written), np.where(labels == 2, 7, labels))  # tumour is 7 here


def test_unknown_segments_and_joint_models_are_refused_before_anything_is_written(
    scene, ct_with_segmentation, tmp_path
):
    volume, segmentation, _ = ct_with_segmentation
    (tmp_path / "joint").mkdir()
    joint = model_folder(tmp_path / "joint", mode="joint")
    with pytest.raises(ValueError, match="joint model"):
        painting.export_label_for_model(scene, segmentation, volume, joint, tmp_path / "labels")
    first = scene_files.segment_ids(segmentation)[0]
    segmentation.GetSegmentation().GetSegment(first).SetName("spleen")
    with pytest.raises(ValueError, match="'spleen'.*liver, tumour"):
        painting.export_label_for_model(scene, segmentation, volume, model_folder(tmp_path), tmp_path / "labels")
    assert not (tmp_path / "labels").exists()


@needs_trainer
def test_a_conditional_model_paints_a_scan_for_a_scene_segmentation_on_its_grid(scene, tmp_path):
    from RaGANModuleLib import demo_data

    volume, segmentation = demo_data.add_phantom_case(scene, seed=2, shape=(8, 64, 64))
    run = tmp_path / "run"
    cases = [training_cases.TrainingCase(volume, segmentation)]
    training_cases.write_spec(
        run, training_cases.export_cases(scene, cases, run), TINY_TRAINING | {"mode": "conditional"}
    )
    job = TrainerJob(train_arguments(run), sys.executable, run_folder=run, device="cpu")
    job.start()
    assert job.wait(timeout_s=300) == JobState.DONE, f"{job.message}\n{job.log_tail()}"

    labels = painting.export_label_for_model(scene, segmentation, volume, run / "model", tmp_path / "paint" / "labels")
    job = TrainerJob(
        paint_arguments(run / "model", labels.parent, 3, tmp_path / "paint" / "out"), sys.executable, device="cpu"
    )
    job.start()
    assert job.wait(timeout_s=180) == JobState.DONE, f"{job.message}\n{job.log_tail()}"
    painted, painted_segmentation = painting.load_painted(scene, job.finished["outputs"], run / "model", volume)

    assert painted.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    assert np.allclose(painted.GetSpacing(), volume.GetSpacing()) and np.allclose(
        painted.GetOrigin(), volume.GetOrigin()
    )
    names = sorted(
        painted_segmentation.GetSegmentation().GetSegment(i).GetName()
        for i in scene_files.segment_ids(painted_segmentation)
    )
    assert names == ["lesion", "organ", "vessel"]
    values = {"organ": 1, "lesion": 2, "vessel": 3}
    original = training_cases.label_array(scene, training_cases.TrainingCase(volume, segmentation), values)
    back = training_cases.label_array(scene, training_cases.TrainingCase(painted, painted_segmentation), values)
    assert np.array_equal(back, original), "the painted volume's segmentation is the segmentation it was painted for"
