"""Generated files -> scene: the synthetic stack comes back as a volume and a segmentation the user recognises.

These tests write `generate`'s outputs the way the trainer's contract describes them (a model folder with model.json,
synthetic_image.nrrd, synthetic_label.nrrd with original label values), so they run without TensorFlow; the
end-to-end test in test_trainer_job.py does the same with the real trainer.
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from RaGANModuleLib import dataset_export, panel, results, scene_files
from RaGANModuleLib.panel_actions import NeedsInput, PanelActions
from RaGANModuleLib.trainer_job import JobState, TrainerJob
from slicer_test_support import CLASSES, make_volume, model_folder, module_logic


@pytest.fixture
def generated(tmp_path):
    """A model folder and generate's outputs: 5 slices of 32x32 at 0.7 x 0.7 mm, 3 mm apart, HU values."""
    model = model_folder(tmp_path / "run", mode="joint")
    out = tmp_path / "generated"
    out.mkdir()
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.integers(-1000, 1000, size=(5, 32, 32)).astype(np.int16))
    labels = np.zeros((5, 32, 32), np.uint8)
    labels[:, 4:20, 4:20] = 1
    labels[1:3, 8:12, 8:12] = 7
    label = sitk.GetImageFromArray(labels)
    for volume in (image, label):
        volume.SetSpacing((0.7, 0.7, 3.0))
    sitk.WriteImage(image, str(out / "synthetic_image.nrrd"))
    sitk.WriteImage(label, str(out / "synthetic_label.nrrd"))
    outputs = {"image": str(out / "synthetic_image.nrrd"), "label": str(out / "synthetic_label.nrrd")}
    return model, outputs, labels


def test_generated_stack_loads_as_volume_and_named_coloured_segments_beside_the_study(
    scene, ct_with_segmentation, generated
):
    source, _, _ = ct_with_segmentation
    model, outputs, labels = generated

    volume, segmentation = results.load_generated(scene, outputs, model, source_node=source, name="Synthetic CT")

    assert volume.IsA("vtkMRMLScalarVolumeNode") and not volume.IsA("vtkMRMLLabelMapVolumeNode")
    assert np.allclose(volume.GetSpacing(), (0.7, 0.7, 3.0))
    assert np.array_equal(_array(volume), sitk.GetArrayFromImage(sitk.ReadImage(outputs["image"])))
    segments = {
        s.GetName(): s for s in map(segmentation.GetSegmentation().GetSegment, scene_files.segment_ids(segmentation))
    }
    assert set(segments) == {"liver", "tumour"}
    assert np.allclose(segments["liver"].GetColor(), (0.9, 0.4, 0.3))
    assert np.allclose(segments["tumour"].GetColor(), (0.2, 0.8, 0.1))
    # The segments hold the original label values' voxels.
    from RaGANModuleLib.training_cases import TrainingCase, label_array

    back = label_array(scene, TrainingCase(volume, segmentation), {"liver": 1, "tumour": 7})
    assert np.array_equal(back, labels)
    # Subject hierarchy: a new study "Synthetic CT" under the source's patient, holding both nodes.
    hierarchy = scene_files.subject_hierarchy(scene)
    parent = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(volume))
    assert hierarchy.GetItemName(parent) == "Synthetic CT"
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(segmentation)) == parent
    patient = hierarchy.GetItemParent(hierarchy.GetItemParent(hierarchy.GetItemByDataNode(source)))
    assert hierarchy.GetItemParent(parent) == patient and hierarchy.GetItemName(patient) == "Patient 1"


def test_a_failed_load_leaves_nothing_half_made(scene, generated):
    model, outputs, _ = generated
    before = scene.GetNumberOfNodes()
    broken = dict(outputs, label=outputs["label"] + ".missing")
    with pytest.raises(OSError):
        results.load_generated(scene, broken, model)
    assert scene.GetNumberOfNodes() == before, [
        scene.GetNthNode(i).GetClassName() for i in range(scene.GetNumberOfNodes())
    ]


def test_class_missing_from_the_generated_slices_still_gets_its_segment(scene, generated):
    model, outputs, _ = generated
    label = sitk.ReadImage(outputs["label"])
    sitk.WriteImage(sitk.Clamp(label, upperBound=1), outputs["label"])  # no tumour voxels anywhere
    _, segmentation = results.load_generated(scene, outputs, model)
    names = [segmentation.GetSegmentation().GetSegment(i).GetName() for i in scene_files.segment_ids(segmentation)]
    assert sorted(names) == ["liver", "tumour"]


def test_preview_nodes_are_reused_when_a_new_preview_arrives(scene, generated, tmp_path):
    _, outputs, _ = generated
    preview = results.PreviewNodes(scene)
    assert preview.update({"event": "preview", "step": 3, "image": outputs["image"], "label": outputs["label"]})
    first = preview.volume
    sitk.WriteImage(sitk.GetImageFromArray(np.full((5, 32, 32), 42, np.int16)), str(tmp_path / "next.nrrd"))
    assert preview.update({"event": "preview", "step": 6, "image": str(tmp_path / "next.nrrd"), "label": None})
    assert preview.volume is first and preview.step == 6
    assert int(_array(first).max()) == 42
    assert len(_nodes(scene, "vtkMRMLScalarVolumeNode")) == 2  # preview image and preview label, nothing more


def test_loss_chart_gets_one_series_per_loss_and_one_row_per_progress_event(scene):
    chart = results.LossChart(scene)
    for step in (1, 2, 3):
        chart.add({"event": "progress", "step": step, "losses": {"generator": 1.0 / step, "discriminator": 0.5}})
    table = chart.table.GetTable()
    assert table.GetNumberOfRows() == 3
    assert chart.chart.GetNumberOfPlotSeriesNodes() == 2
    assert table.GetValueByName(2, "generator").ToDouble() == pytest.approx(1 / 3)
    assert table.GetValueByName(0, "step").ToDouble() == 1.0


def test_nnunet_export_writes_real_and_synthetic_cases_with_the_model_classes(scene, generated, tmp_path):
    model, outputs, labels = generated
    from RaGANModuleLib.locations import import_ragan_lib

    import_ragan_lib()
    from RaGANLib.data.nnunet import DatasetWriter, read_dataset

    synthetic = tmp_path / "generated" / "nnunet"
    writer = DatasetWriter(synthetic, "CT", ["background", "liver", "tumour"])
    image = sitk.ReadImage(outputs["image"])
    writer.add_case("synthetic_0000", image[:, :, 0], sitk.GetImageFromArray(np.minimum(labels[0], 2)))
    writer.finish()
    real_image = make_volume(scene, "vtkMRMLScalarVolumeNode", "real", np.zeros((2, 4, 4), np.int16))
    del real_image  # the real pair comes from files, as the run folder holds them
    sitk.WriteImage(image, str(tmp_path / "real_image.nrrd"))
    sitk.WriteImage(sitk.ReadImage(outputs["label"]), str(tmp_path / "real_label.nrrd"))

    target, splits = dataset_export.export_nnunet(
        tmp_path / "Dataset501_RaGAN",
        model,
        real_pairs=[(tmp_path / "real_image.nrrd", tmp_path / "real_label.nrrd")],
        synthetic_dataset=synthetic,
    )

    cases, names, channel = read_dataset(target)
    assert [c[0] for c in cases] == ["real_0000", "synthetic_0000"]
    assert names == {"1": "liver", "2": "tumour"} and channel == "CT"
    real_label = sitk.GetArrayFromImage(sitk.ReadImage(str(cases[0][2])))
    assert np.array_equal(real_label, np.where(labels == 7, 2, labels))  # original value 7 -> class index 2
    assert json.loads(splits.read_text()) == [{"train": ["synthetic_0000"], "val": ["real_0000"]}]


def _array(volume):
    import slicer

    return slicer.util.arrayFromVolume(volume)


def _nodes(scene, class_name):
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def test_a_model_json_that_does_not_fit_the_schema_is_refused_naming_the_field(generated):
    model, _, _ = generated
    info = json.loads((model / "model.json").read_text())
    info["classes"][2]["value"] = -1
    (model / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"classes\[2\]\.value must be at least 0"):
        results.read_model(model)
    (model / "model.json").write_text(json.dumps({**info, "generator": "/elsewhere/generator.keras"}))
    with pytest.raises(ValueError, match="field generator must be a file name inside the model folder"):
        results.model_classes(model)


def test_a_model_saved_by_a_newer_keras_is_refused_with_the_version_to_install(generated, tmp_path):
    """The trainer's Python here has Keras 3.15.x: a model saved by Keras 3.16 is refused before anything starts."""
    model, _, _ = generated
    info = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**info, "versions": {"keras": "3.16.0", "tensorflow": "2.21.0"}}))
    with pytest.raises(ValueError, match=r'model\.json.*versions\.keras.*Keras 3\.16\.0.*"keras>=3\.16"'):
        results.read_model(model, keras="3.15.1")
    assert results.read_model(model, keras="3.16.2").versions["keras"] == "3.16.0"
    assert [c.to_json() for c in results.read_model(model).classes] == CLASSES, (
        "without the trainer's version: not judged"
    )

    logic = module_logic()
    installed = logic.trainerCheck().versions["keras"]
    saved = f"{int(installed.split('.')[0])}.{int(installed.split('.')[1]) + 1}.0"
    (model / "model.json").write_text(json.dumps({**info, "versions": {"keras": saved}}))
    before = sorted(p.name for p in model.parent.iterdir())
    with pytest.raises(ValueError, match=f"install keras>={saved[:-2]}"):
        logic.startGenerate(model, 4, 0, "cpu")
    assert sorted(p.name for p in model.parent.iterdir()) == before, "no generated/ folder for a refused model"


def synthetic_dataset(folder, count: int):
    """generate's nnunet/ folder with `count` synthetic one-slice cases of the `generated` model's classes."""
    from RaGANModuleLib.locations import import_ragan_lib

    import_ragan_lib()
    from RaGANLib.data.nnunet import DatasetWriter

    writer = DatasetWriter(folder, "CT", ["background", "liver", "tumour"])
    for number in range(count):
        label = np.zeros((1, 8, 8), np.uint8)
        label[0, 2:5, 2:5] = 1 + number % 2
        writer.add_case(
            f"synthetic_{number:04d}",
            sitk.GetImageFromArray(np.zeros((1, 8, 8), np.int16)),
            sitk.GetImageFromArray(label),
        )
    return writer.finish()


def test_nnunet_folds_validate_on_real_cases_only_and_the_folder_is_named_for_nnunet(generated, tmp_path):
    model, outputs, _ = generated
    real = [(Path(outputs["image"]), Path(outputs["label"]))] * 7
    synthetic = synthetic_dataset(tmp_path / "generated" / "nnunet", 12)

    with pytest.raises(ValueError, match="DatasetNNN_Name.*'my dataset' is not such a name"):
        dataset_export.export_nnunet(tmp_path / "my dataset", model, real, synthetic)
    assert not (tmp_path / "my dataset").exists()

    folder, splits = dataset_export.export_nnunet(tmp_path / "Dataset502_Liver", model, real, synthetic)
    folds = json.loads(splits.read_text())
    assert len(folds) == 5, "nnU-Net trains folds 0-4"
    real_ids = {f"real_{n:04d}" for n in range(7)}
    synthetic_ids = {f"synthetic_{n:04d}" for n in range(12)}
    assert set().union(*(set(f["val"]) for f in folds)) == real_ids, "every real case is validated once"
    for fold in folds:
        assert set(fold["val"]) <= real_ids and synthetic_ids <= set(fold["train"])
        assert not set(fold["val"]) & set(fold["train"])
    assert sorted(len(f["val"]) for f in folds) == [1, 1, 1, 2, 2]
    before = (folder / "dataset.json").read_bytes()
    assert dataset_export.synthetic_share_warning(folder, model) == (
        "12 synthetic cases next to 7 real ones make a training set that is 63% synthetic (nnU-Net draws every case "
        "equally often, so this is the synthetic share of its batches). With a joint model, the phantom benchmark "
        "(docs/benchmark-phantom.md) found no harm to a U-Net's Dice up to 25% synthetic and a lower Dice beyond: use "
        "at most 2 synthetic cases with these 7 real ones"
    )
    assert (folder / "dataset.json").read_bytes() == before


def test_the_synthetic_share_an_export_warns_about_follows_the_models_mode(generated, tmp_path):
    """Joint: up to 25% synthetic cases pass; conditional: up to 50%. Synthetic cases alone are warned about."""
    model, outputs, _ = generated
    real = [(Path(outputs["image"]), Path(outputs["label"]))] * 3
    folder, _ = dataset_export.export_nnunet(
        tmp_path / "Dataset505_Mix", model, real, synthetic_dataset(tmp_path / "a", 1)
    )
    assert dataset_export.synthetic_share_warning(folder, model) is None  # 1 of 4
    folder, _ = dataset_export.export_nnunet(folder, model, [], synthetic_dataset(tmp_path / "b", 2))
    assert "3 synthetic cases next to 3 real ones" in dataset_export.synthetic_share_warning(folder, model)
    info = json.loads((model / "model.json").read_text())
    (model / "labels.npz").write_bytes(b"")  # a conditional model folder names its labels; they are not read here
    (model / "model.json").write_text(json.dumps({**info, "format": 2, "mode": "conditional", "labels": "labels.npz"}))
    assert dataset_export.synthetic_share_warning(folder, model) is None  # 3 of 6: 50%
    only, _ = dataset_export.export_nnunet(
        tmp_path / "Dataset506_Only", model, [], synthetic_dataset(tmp_path / "c", 2)
    )
    assert dataset_export.synthetic_share_warning(only, model).startswith(
        "2 synthetic cases and no real ones make a training set that is all synthetic (nnU-Net"
    )


def test_nnunet_splits_only_for_a_mix_and_a_users_own_are_left_alone(generated, tmp_path):
    model, outputs, _ = generated
    real = [(Path(outputs["image"]), Path(outputs["label"]))] * 2
    folder, splits = dataset_export.export_nnunet(tmp_path / "Dataset503_Own", model, real)
    assert splits is None and not (folder / "splits_final.json").exists(), "all real: nnU-Net's own folds are right"
    folder, splits = dataset_export.export_nnunet(folder, model, [], synthetic_dataset(tmp_path / "generated" / "a", 2))
    assert splits is not None, "now a mix"
    _, splits = dataset_export.export_nnunet(folder, model, real)
    validated = {case for fold in json.loads(splits.read_text()) for case in fold["val"]}
    assert validated == {f"real_{n:04d}" for n in (0, 1, 4, 5)}, "RaGAN's own folds follow the added cases"
    own = json.dumps([{"train": ["real_0000"], "val": ["real_0001"]}] * 3).encode()
    (folder / "splits_final.json").write_bytes(own)

    _, splits = dataset_export.export_nnunet(folder, model, real)
    assert splits is None and (folder / "splits_final.json").read_bytes() == own, "the user's own folds stay"

    synthetic = synthetic_dataset(tmp_path / "generated" / "b", 3)
    only, splits = dataset_export.export_nnunet(tmp_path / "Dataset504_Synthetic", model, [], synthetic)
    assert splits is None and not (only / "splits_final.json").exists()


def test_the_runs_real_pairs_for_the_nnunet_export_come_from_its_checked_spec_json(generated, tmp_path):
    """Paths in spec.json are relative to the run folder; a spec.json that is not a spec is refused naming it."""
    model, _, _ = generated
    spec = model.parent / "spec.json"
    spec.write_text(json.dumps({"pairs": [["cases/ct.nrrd", "cases/ct-label.nrrd"]], "size": 64}))
    assert dataset_export.run_pairs(model) == [
        ((model.parent / "cases" / "ct.nrrd").resolve(), (model.parent / "cases" / "ct-label.nrrd").resolve())
    ]
    spec.write_text(json.dumps({"pairs": [["cases/ct.nrrd"]], "size": 64}))
    before = spec.read_bytes()
    with pytest.raises(ValueError, match=re.escape(f"spec '{spec}'") + ".*pairs"):
        dataset_export.run_pairs(model)
    assert spec.read_bytes() == before
    spec.unlink()
    assert dataset_export.run_pairs(model) == [], "a model folder outside a run folder has no real pairs"


def test_the_panels_generate_result_loads_and_exports_with_its_message_and_warning(scene, generated, tmp_path):
    """What the panel does when a generate job ended (PanelActions.load) and when Export is pressed after it: the
    synthetic cases of that generate job's nnunet/ folder go into the dataset, and the message says where."""
    model, outputs, _ = generated
    actions = PanelActions(module_logic(start=False), scene)
    job = TrainerJob(["generate"], sys.executable)
    job.state, job.finished = JobState.DONE, {"event": "finished", "outputs": outputs}  # as poll() takes them
    actions.generating = actions.result = panel.GenerateView(job, model, Path(outputs["image"]).parent)

    source, volume, segmentation, axis = actions.load(actions.generating)

    assert source is None and axis == "axial" and volume.GetImageData().GetDimensions() == (32, 32, 5)
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 2
    assert actions.statusTexts() == {"generateStatusLabel": f"Loaded '{volume.GetName()}' (5 slices)."}
    with pytest.raises(NeedsInput, match="Choose a model folder and a dataset folder"):
        actions.export("", model, True, True)
    synthetic_dataset(Path(outputs["image"]).parent / "nnunet", 2)
    with pytest.raises(ValueError, match="no cases to export to 'Dataset506_Panel': no real cases"):
        actions.export(
            tmp_path / "Dataset506_Panel", model, True, False
        )  # the run has no spec.json, synthetic left out
    assert not (tmp_path / "Dataset506_Panel").exists(), "nothing written"

    message, swamped = actions.export(tmp_path / "Dataset506_Panel", model, True, True)

    assert message == f"nnU-Net dataset written to {tmp_path / 'Dataset506_Panel'}."
    assert swamped is not None and "2 synthetic cases" in swamped
    assert actions.statusTexts()["generateStatusLabel"] == swamped, "the generate panel's status line says it too"
