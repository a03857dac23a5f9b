"""What `ragan generate` writes opens right in Slicer: the synthetic stack lies as the training slices did, for each
slicing axis (its direction matrix against the source case's, and in the slice view of that axis), and the labels
also come as a .seg.nrrd that Slicer's own segmentation reader turns into named, coloured segments.

The model folders hold a real Keras generator that has not been trained (geometry and headers do not depend on
training) and are used by the real `generate`, in this process to spare a TensorFlow start per axis.
"""

import io
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from RaGANModuleLib import results, scene_files
from slicer_test_support import needs_trainer

pytestmark = needs_trainer

AXES = ("axial", "coronal", "sagittal")
CLASSES = [
    {"index": 0, "value": 0, "name": "background", "color": [0.0, 0.0, 0.0]},
    {"index": 1, "value": 3, "name": "left kidney", "color": [0.85, 0.35, 0.25]},
    {"index": 2, "value": 9, "name": "renal tumour", "color": [0.2, 0.7, 0.95]},
]
SPACING = [0.7, 0.8]  # rows, columns (mm)
THICKNESS = 2.5
COUNT = 3


def model_folder(folder, axis: str):
    """A model folder as training writes it, for slices along `axis`."""
    import keras

    from RaGANLib.model import model_folder as models
    from RaGANLib.model.networks import LATENT_SIZE, GeneratorContract, family

    keras.utils.set_random_seed(0)
    description = {
        "format": 1,
        "generator": "generator.keras",
        "latent_size": LATENT_SIZE,
        "arch": "residual",
        "classes": CLASSES,
        "modality": "ct",
        "intensity": {"low": -1000.0, "high": 1000.0, "per_case": False},
        "slice": {"size": 64, "spacing": SPACING, "thickness": THICKNESS, "axis": axis},
        "training": {
            "cases": 1,
            "slices": 10,
            "steps": 0,
            "batch": 4,
            "seed": 0,
            "class_pixel_fraction": [0.8, 0.15, 0.05],
        },
        "versions": {"keras": keras.__version__},
    }
    return models.export(
        family("residual").generator(GeneratorContract("joint", 64, len(CLASSES)), 16), description, folder
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """axis -> generate's output paths, from one model per slicing axis."""
    from RaGANLib.events import Reporter
    from RaGANLib.results.generate import generate

    root = tmp_path_factory.mktemp("generated")
    paths = {}
    for axis in AXES:
        model = model_folder(root / axis / "model", axis)
        paths[axis] = generate(model, COUNT, 0, root / axis / "out", Reporter(stream=io.StringIO()))
    return paths


def source_case(folder):
    """A sagittally acquired case (its first index runs anterior to posterior, its rows superior to inferior, its
    slices right to left), whose voxels hold their own L, P and S coordinates: three images on one grid."""
    direction = [0, 0, -1, 1, 0, 0, 0, -1, 0]  # columns of the matrix: index steps in LPS
    shape = (6, 7, 8)  # sitk size (i, j, k)
    reference = sitk.Image(shape, sitk.sitkFloat32)
    reference.SetDirection(direction)
    reference.SetSpacing((0.9, 1.1, 3.0))
    reference.SetOrigin((10.0, -20.0, 30.0))
    coordinates = np.zeros((3, shape[2], shape[1], shape[0]), np.float32)
    for k, j, i in np.ndindex(shape[2], shape[1], shape[0]):
        coordinates[:, k, j, i] = reference.TransformIndexToPhysicalPoint((i, j, k))
    paths = []
    for name, values in zip("LPS", coordinates):
        image = sitk.GetImageFromArray(values)
        image.CopyInformation(reference)
        paths.append(folder / f"{name}.nrrd")
        sitk.WriteImage(image, str(paths[-1]))
    label = sitk.GetImageFromArray(np.ones(coordinates.shape[1:], np.uint8))
    label.CopyInformation(reference)
    sitk.WriteImage(label, str(folder / "label.nrrd"))
    return paths, folder / "label.nrrd"


@pytest.mark.parametrize("axis", AXES)
def test_the_synthetic_stack_lies_as_the_source_cases_training_slices_did(generated, tmp_path, axis):
    """Read the source case as training does (RaGANLib.data.inputs + prepare.to_slices): stepping along a training
    slice's columns, rows and slices moves, in the source case, in directions the synthetic stack's header repeats."""
    from RaGANLib.data.inputs import Case, read_case
    from RaGANLib.data.prepare import to_slices

    images, label = source_case(tmp_path)
    stacks = []
    for image in images:
        values, _, spacing = read_case(Case("source", image, label), [])
        stacks.append(to_slices(values, spacing, axis)[0])
    position = np.stack(stacks, axis=-1)  # [slice, row, column] -> (L, P, S) in mm

    def direction(step):
        moved = position[step] - position[0, 0, 0]
        return moved / np.linalg.norm(moved)

    expected = np.column_stack([direction((0, 0, 1)), direction((0, 1, 0)), direction((1, 0, 0))])
    synthetic = sitk.ReadImage(generated[axis]["image"])
    labels = sitk.ReadImage(generated[axis]["label"])
    found = np.array(synthetic.GetDirection()).reshape(3, 3)
    assert np.allclose(found, expected), f"{axis}: synthetic {found.tolist()}, source slices {expected.tolist()}"
    assert np.allclose(labels.GetDirection(), synthetic.GetDirection())
    assert np.allclose(synthetic.GetSpacing(), (SPACING[1], SPACING[0], THICKNESS))
    first_case = sorted(Path(generated[axis]["nnunet"]).glob("imagesTr/*"))[0]
    assert np.allclose(sitk.ReadImage(str(first_case)).GetDirection(), synthetic.GetDirection())


@pytest.mark.parametrize("axis", AXES)
def test_the_stack_shows_its_slices_in_the_view_of_its_axis(generated, scene, axis):
    """In Slicer the stack's slice index runs along the normal of the view the module shows it in (axial slices in
    an axial view), with the real case beside it in the same orientation."""
    volume = scene_files.read_volume(scene, generated[axis]["image"], "vtkMRMLScalarVolumeNode", "synthetic")
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)
    views = [scene.AddNewNodeByClass("vtkMRMLSliceNode", name) for name in ("Red", "Yellow")]
    results.orient_views(views, axis)

    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASDirectionMatrix(ijk_to_ras)
    slice_axis = np.array([ijk_to_ras.GetElement(r, 2) for r in range(3)])
    expected = {"axial": (0, 0, 1), "coronal": (0, 1, 0), "sagittal": (1, 0, 0)}[axis]
    assert np.allclose(np.abs(slice_axis), expected), f"{axis} stack runs along {slice_axis.tolist()} (RAS)"
    for view in views:
        normal = np.array([view.GetSliceToRAS().GetElement(r, 2) for r in range(3)])
        assert view.GetOrientation() == axis.capitalize()
        assert np.allclose(np.abs(normal), expected)


def test_the_labels_open_in_slicer_as_named_coloured_segments(generated, scene):
    """Slicer's own segmentation reader (vtkMRMLSegmentationStorageNode) reads synthetic_label.seg.nrrd."""
    outputs = generated["coronal"]
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "dropped in")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(outputs["segmentation"])
    assert storage.ReadData(segmentation), "Slicer cannot read the .seg.nrrd"

    found = segmentation.GetSegmentation()
    segments = [found.GetNthSegment(i) for i in range(found.GetNumberOfSegments())]
    assert [s.GetName() for s in segments] == ["left kidney", "renal tumour"]
    assert [s.GetLabelValue() for s in segments] == [3, 9]
    for segment, entry in zip(segments, CLASSES[1:]):
        assert np.allclose(segment.GetColor(), entry["color"], atol=1e-5)

    labels = sitk.GetArrayFromImage(sitk.ReadImage(outputs["label"]))
    reference = scene_files.read_volume(scene, outputs["image"], "vtkMRMLScalarVolumeNode", "synthetic")
    values = scene_files.color_table(scene, "values", {c["value"]: c["name"] for c in CLASSES[1:]}, {})
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "exported")
    ids = scene_files.string_array(scene_files.segment_ids(segmentation))
    extent = slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
    logic = scene_files.segmentations_logic(scene)
    assert logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, reference, extent, values)
    assert np.array_equal(slicer.util.arrayFromVolume(labelmap), labels), "the segments hold the label stack's voxels"
    with open(outputs["segmentation"], "rb") as handle:
        header = handle.read(4096).split(b"\n\n")[0].decode("ascii")
    assert "Segment1_Name:=renal tumour" in header and "Segment0_LabelValue:=3" in header
