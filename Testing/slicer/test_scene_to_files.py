"""Scene -> run folder: what leaves the scene for the trainer is the same image and label, voxel for voxel."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from RaGANModuleLib import training_cases
from RaGANModuleLib.training_cases import TrainingCase
from slicer_test_support import make_volume


def test_volume_and_two_named_segments_go_out_with_identical_geometry_and_values(scene, ct_with_segmentation, tmp_path):
    volume, segmentation, expected_labels = ct_with_segmentation

    exported = training_cases.export_cases(scene, [TrainingCase(volume, segmentation)], tmp_path)

    image_path, label_path = (tmp_path / p for p in exported.pairs[0])
    image, label = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(label_path))
    assert np.array_equal(sitk.GetArrayFromImage(image), slicer_array(volume))
    assert sitk.GetArrayFromImage(image).dtype == np.int16
    # Slicer keeps RAS in the scene; files are LPS: origin x and y flip sign, the direction flips back to identity.
    for written in (image, label):
        assert np.allclose(written.GetSpacing(), volume.GetSpacing()) and np.allclose(
            written.GetSpacing(), (0.8, 0.9, 2.5)
        )
        assert np.allclose(written.GetOrigin(), (-12.0, 30.0, 40.0))
        assert np.allclose(written.GetDirection(), np.eye(3).ravel())
        assert written.GetSize() == (48, 40, 12)
    assert exported.label_names == {1: "liver", 2: "tumour"}
    assert np.allclose(exported.label_colors[1], (0.9, 0.4, 0.3)) and np.allclose(
        exported.label_colors[2], (0.2, 0.8, 0.1)
    )
    assert np.array_equal(sitk.GetArrayFromImage(label), expected_labels)
    assert not scene.GetFirstNodeByName("__RaGAN temporary label__"), "temporary nodes must not stay in the scene"


def test_segments_keep_their_value_by_name_across_cases(scene, ct_with_segmentation, tmp_path):
    """A second case whose segments come in the other order still writes liver=1, tumour=2."""
    volume, segmentation, expected_labels = ct_with_segmentation
    from RaGANModuleLib import scene_files

    swapped = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "second")
    swapped.CreateDefaultDisplayNodes()
    swapped.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    swapped_labels = np.where(expected_labels == 0, 0, 3 - expected_labels).astype(np.uint8)
    temporary = make_volume(scene, "vtkMRMLLabelMapVolumeNode", "tmp", swapped_labels)
    scene_files.segmentations_logic(scene).ImportLabelmapToSegmentationNode(temporary, swapped)
    first, second = scene_files.segment_ids(swapped)
    swapped.GetSegmentation().GetSegment(first).SetName("tumour")
    swapped.GetSegmentation().GetSegment(second).SetName("liver")

    cases = [TrainingCase(volume, segmentation), TrainingCase(volume, swapped)]
    exported = training_cases.export_cases(scene, cases, tmp_path)

    second_label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / exported.pairs[1][1])))
    assert np.array_equal(second_label, expected_labels)


def test_labelmap_volume_keeps_its_values_and_names(scene, tmp_path):
    image = np.arange(6 * 8 * 10, dtype=np.int16).reshape(6, 8, 10)
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[1:4, 2:5, 3:7] = 5
    volume = make_volume(scene, "vtkMRMLScalarVolumeNode", "MR", image)
    labelmap = make_volume(scene, "vtkMRMLLabelMapVolumeNode", "MR-label", labels)

    assert training_cases.find_label_for(scene, volume) is labelmap
    exported = training_cases.export_cases(scene, training_cases.cases_with_labels(scene), tmp_path)

    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / exported.pairs[0][1]))), labels)
    assert list(exported.label_names) == [5]


def test_labelmap_on_a_coarser_grid_is_brought_onto_the_image_grid_with_its_values(scene, tmp_path):
    volume = make_volume(scene, "vtkMRMLScalarVolumeNode", "CT", np.zeros((8, 10, 12), np.int16), spacing=(1, 1, 1))
    coarse = np.zeros((4, 5, 6), np.uint8)
    coarse[1:3, 1:4, 2:5] = 5
    # Coarse voxel centres half a fine voxel past the fine ones (x and y point to -R, -A): each covers 2x2x2 of them.
    origin = (12.0 - 0.5, -30.0 - 0.5, 40.0 + 0.5)
    labelmap = make_volume(scene, "vtkMRMLLabelMapVolumeNode", "CT-label", coarse, spacing=(2, 2, 2), origin=origin)

    exported = training_cases.export_cases(scene, [TrainingCase(volume, labelmap)], tmp_path)

    label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / exported.pairs[0][1])))
    assert label.shape == (8, 10, 12)
    assert np.array_equal(label, np.kron(coarse, np.ones((2, 2, 2), np.uint8))), "each coarse voxel covers 2x2x2"
    assert list(exported.label_names) == [5]


def test_counts_labelled_slices_along_the_chosen_axis(scene, ct_with_segmentation):
    volume, segmentation, _ = ct_with_segmentation
    case = TrainingCase(volume, segmentation)
    assert training_cases.labelled_slice_count(scene, case, "axial") == 8  # k = 2..9
    assert training_cases.labelled_slice_count(scene, case, "coronal") == 22  # j = 8..29
    assert training_cases.labelled_slice_count(scene, case, "sagittal") == 30  # i = 10..39


def test_slices_are_counted_as_the_trainer_cuts_them_for_a_sagittally_acquired_volume(scene, tmp_path):
    """Index k runs right to left, j superior to inferior, i anterior to posterior: the label box spans 4 sagittal,
    20 axial and 7 coronal positions, whatever the index order; the trainer's own reading of the exported case agrees.
    """
    from RaGANLib.data.inputs import Case, read_case
    from RaGANLib.data.prepare import to_slices

    labels = np.zeros((10, 40, 30), np.uint8)
    labels[2:6, 5:25, 3:10] = 1
    volume = make_volume(scene, "vtkMRMLScalarVolumeNode", "sagittal MR", np.ones(labels.shape, np.int16))
    directions = vtk.vtkMatrix4x4()
    for row, column, value in ((1, 0, 1.0), (2, 1, -1.0), (0, 2, -1.0)):  # i -> A, j -> I, k -> L (RAS)
        directions.SetElement(row, row, 0.0)
        directions.SetElement(row, column, value)
    volume.SetIJKToRASDirectionMatrix(directions)
    labelmap = make_volume(scene, "vtkMRMLLabelMapVolumeNode", "sagittal MR-label", labels)
    labelmap.SetIJKToRASDirectionMatrix(directions)
    case = TrainingCase(volume, labelmap)

    counts = {axis: training_cases.labelled_slice_count(scene, case, axis) for axis in ("axial", "coronal", "sagittal")}

    assert counts == {"axial": 20, "coronal": 7, "sagittal": 4}
    exported = training_cases.export_cases(scene, [case], tmp_path)
    image, label = (tmp_path / path for path in exported.pairs[0])
    _, values, spacing = read_case(Case("exported", image, label), [])
    for axis, count in counts.items():
        stack = to_slices(values, spacing, axis)[0]
        assert sum(bool(s.any()) for s in stack) == count, axis


def test_spec_names_the_files_and_options_the_trainer_reads(scene, ct_with_segmentation, tmp_path):
    volume, segmentation, _ = ct_with_segmentation
    exported = training_cases.export_cases(scene, [TrainingCase(volume, segmentation)], tmp_path)
    from RaGANLib.spec import PRESETS

    path = training_cases.write_spec(tmp_path, exported, PRESETS["quick look"] | {"seed": 7})

    spec = json.loads(path.read_text())
    assert spec["pairs"] == [["cases/case-000_image.nrrd", "cases/case-000_label.nrrd"]]
    assert spec["label_names"] == {"1": "liver", "2": "tumour"}
    assert spec["label_colors"]["2"] == [0.2, 0.8, 0.1]
    assert (spec["size"], spec["steps"], spec["batch"], spec["seed"]) == (64, 600, 8, 7)
    from RaGANLib.spec import TrainSpec

    assert TrainSpec.load(path).pairs[0][0] == str(tmp_path / "cases" / "case-000_image.nrrd")


def test_spec_takes_the_panels_augmentation_choice_as_the_command_line_does(scene, ct_with_segmentation, tmp_path):
    volume, segmentation, _ = ct_with_segmentation
    exported = training_cases.export_cases(scene, [TrainingCase(volume, segmentation)], tmp_path)
    for choice, stored in (("ada", "ada"), ("0.25", 0.25), ("0", 0.0)):
        path = training_cases.write_spec(tmp_path, exported, {"augment": choice})
        assert json.loads(path.read_text())["augment"] == stored
    from RaGANLib.errors import BadInput

    before = path.read_bytes()
    with pytest.raises(BadInput, match="augment must be ada or a probability between 0 and 1"):
        training_cases.write_spec(tmp_path, exported, {"augment": "often"})
    assert path.read_bytes() == before  # a refused choice leaves the spec as it was


def slicer_array(volume):
    import slicer

    return slicer.util.arrayFromVolume(volume)
