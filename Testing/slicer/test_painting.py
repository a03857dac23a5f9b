"""Segmentation -> synthetic scan with a conditional model ("Synthesize an image for this segmentation" in the
Generate panel): the module writes a segmentation with the model's label values on its source scan's grid, starts
`generate --labels` through the child-process protocol, and loads the painted volume back on that grid, on a real MRML
scene (slicer-core), through the module's Logic as the panel calls it.

The first tests use a model folder's model.json only (no TensorFlow); the last takes a tiny conditional model trained
from a scene with the real trainer (conftest.py), paints a lesion into the case's segmentation and has the model paint
a scan for it.
"""

import json
import sys
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
from RaGANModuleLib import painting, panel, scene_files, training_cases
from slicer_test_support import model_folder, module_logic, needs_trainer, view_until_ended


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


def test_painting_is_offered_for_conditional_models_only_and_otherwise_says_why(tmp_path):
    """The panel's button is enabled for a conditional model; otherwise its tooltip gives this reason."""
    assert painting.paint_unavailable_reason(model_folder(tmp_path)) is None
    (tmp_path / "joint").mkdir()
    joint = painting.paint_unavailable_reason(model_folder(tmp_path / "joint", mode="joint"))
    assert "makes its own labels (a joint model)" in joint and "Mode: conditional" in joint
    assert "choose a model folder" in painting.paint_unavailable_reason(None)
    assert "elsewhere/model.json' does not exist" in painting.paint_unavailable_reason(tmp_path / "elsewhere")


def test_paint_writes_the_segmentation_beside_the_model_and_starts_generate_labels(
    scene, ct_with_segmentation, tmp_path
):
    volume, segmentation, labels = ct_with_segmentation
    model = model_folder(tmp_path)

    job, folder, scan = module_logic(start=False).startPaint(scene, segmentation, model, 5, "cpu")

    assert folder == tmp_path / "painted-001" and scan.GetID() == volume.GetID(), "the volume it was drawn on"
    assert job.command == [
        sys.executable,
        "-m",
        "RaGANLib",
        "generate",
        str(model),
        "--labels",
        str(folder / "labels"),
        "--seed",
        "5",
        "--out",
        str(folder / "painted"),
        "--events",
        "json",
    ]
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels" / "segmentation.nrrd")))
    assert np.array_equal(written, np.where(labels == 2, 7, labels))
    assert not (folder / "painted").exists(), "generate gets a new folder to paint into"


def test_paint_refuses_in_plain_words_and_writes_nothing(scene, ct_with_segmentation, tmp_path):
    volume, segmentation, _ = ct_with_segmentation
    logic = module_logic(start=False)
    model = model_folder(tmp_path)
    (tmp_path / "joint").mkdir()
    with pytest.raises(ValueError, match="joint model"):
        logic.startPaint(scene, segmentation, model_folder(tmp_path / "joint", mode="joint"), 0, "cpu")
    with pytest.raises(ValueError, match="choose a model folder"):
        logic.startPaint(scene, segmentation, None, 0, "cpu")
    loose = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn nowhere")
    loose.GetSegmentation().AddEmptySegment("", "liver")
    with pytest.raises(ValueError, match="'drawn nowhere' was not drawn on a volume: pick the volume"):
        logic.startPaint(scene, loose, model, 0, "cpu")
    first = scene_files.segment_ids(segmentation)[0]
    segmentation.GetSegmentation().GetSegment(first).SetName("spleen")
    with pytest.raises(ValueError, match="'spleen'"):
        logic.startPaint(scene, segmentation, model, 0, "cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joint", "model"], "no painted-NNN folder is left"


@needs_trainer
def test_a_conditional_model_paints_a_scan_for_a_scene_segmentation_on_its_grid(scene, conditional_run):
    """The panel's path: a model trained in conditional mode from the case (conftest.py's conditional_run), a lesion
    painted into the case's segmentation (as with Segment Editor), and a synthetic scan for it on the case's grid."""
    from RaGANModuleLib import demo_data

    run = conditional_run
    # The panel's options reached the run: the conditional generator without the options of spec version 4.
    spec = json.loads((run / "spec.json").read_text())
    assert (spec["border_padding"], spec["pixel_noise"], spec["class_intensity"]) == ("zero", False, 0.0)
    with zipfile.ZipFile(run / "model" / "generator.keras") as saved:
        layers = [layer["name"] for layer in json.loads(saved.read("config.json"))["config"]["layers"]]
    assert "norm4_mod_scaled" in layers and not [name for name in layers if name.endswith(("_pad", "_noise"))]
    logic = module_logic()
    volume, segmentation = demo_data.add_phantom_case(scene, seed=2, shape=(8, 64, 64))  # the case it was trained on

    values = {"organ": 1, "lesion": 2, "vessel": 3}
    original = training_cases.label_array(scene, training_cases.TrainingCase(volume, segmentation), values)
    ids = {segmentation.GetSegmentation().GetSegment(i).GetName(): i for i in scene_files.segment_ids(segmentation)}
    zz, yy, xx = np.mgrid[0 : original.shape[0], 0 : original.shape[1], 0 : original.shape[2]]
    centre = np.argwhere(original[4] == 1).mean(axis=0)
    # A lesion painted into the organ with Segment Editor (the organ segment gives way where it is drawn).
    drawn = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= 9) & (zz >= 3) & (zz <= 5) & (original == 1)
    for name, mask in (("lesion", (original == 2) | drawn), ("organ", (original == 1) & ~drawn)):
        set_segment(scene, segmentation, ids[name], mask, volume)
    edited = np.where(drawn, 2, original)

    job, folder, scan = logic.startPaint(scene, segmentation, run / "model", 3, "cpu")
    view = panel.PaintView(job, run / "model", folder, training_cases.TrainingCase(scan, segmentation))
    view_until_ended(view, 180)  # as the panel's timer polls it
    assert view.failure is None, f"{job.message}\n{job.log_tail()}"
    painted, painted_segmentation = logic.loadPainted(scene, view.outputs, view.modelFolder, view.source.image)
    view.loaded(painted)
    assert view.status == f"Loaded '{painted.GetName()}': a synthetic scan for '{segmentation.GetName()}'."

    assert folder.parent == run and scan.GetID() == volume.GetID()

    assert painted.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    assert np.allclose(painted.GetSpacing(), volume.GetSpacing()) and np.allclose(
        painted.GetOrigin(), volume.GetOrigin()
    )
    names = sorted(
        painted_segmentation.GetSegmentation().GetSegment(i).GetName()
        for i in scene_files.segment_ids(painted_segmentation)
    )
    assert names == ["lesion", "organ", "vessel"]
    back = training_cases.label_array(scene, training_cases.TrainingCase(painted, painted_segmentation), values)
    assert np.array_equal(back, edited), "the painted volume's segmentation is the segmentation it was painted for"
    assert drawn.sum() > 10 and not (original[drawn] == 2).any(), "the drawn lesion is new"


def set_segment(scene, segmentation, segment_id, mask, volume) -> None:
    """Replace a segment by `mask` ([k, j, i] on `volume`'s grid), as a Segment Editor effect does."""
    import slicer
    import vtk

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "drawn")
    labelmap.SetAndObserveImageData(vtk.vtkImageData())
    geometry = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(geometry)
    labelmap.SetIJKToRASMatrix(geometry)
    slicer.util.updateVolumeFromArray(labelmap, mask.astype(np.uint8))
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    image = logic.CreateOrientedImageDataFromVolumeNode(labelmap)
    assert logic.SetBinaryLabelmapToSegment(image, segmentation, segment_id, logic.MODE_REPLACE, image.GetExtent())
    scene.RemoveNode(labelmap)
