"""Fixtures of the Slicer module's tests: a real MRML scene (slicer-core) and cases in it.

The module's Qt-free package (RaGAN/RaGANModuleLib) is imported the way Slicer would find it: RaGAN/ on sys.path.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
MODULE_FOLDER = REPOSITORY / "RaGAN"
sys.path.insert(0, str(MODULE_FOLDER))

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
vtk = pytest.importorskip("vtk")

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
HAS_TRAINER = (REPOSITORY / "RaGANLib" / "cli.py").is_file()
needs_trainer = pytest.mark.skipif(
    not (HAS_TENSORFLOW and HAS_TRAINER),
    reason="the real trainer needs TensorFlow and RaGANLib/cli.py"
    + ("" if HAS_TENSORFLOW else " (TensorFlow is not importable)")
    + ("" if HAS_TRAINER else " (RaGANLib/cli.py is missing)"),
)

# Tiny training settings: a few steps on 64x64 slices, enough for every event kind to appear.
TINY_TRAINING = {"size": 64, "steps": 6, "batch": 4, "checkpoint_every": 3, "preview_every": 3, "log_every": 1}


@pytest.fixture
def scene():
    """An empty scene as Slicer starts with: it already has its subject hierarchy node."""
    scene = slicer.vtkMRMLScene()
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    return scene


def make_volume(scene, node_class, name, array, spacing=(0.8, 0.9, 2.5), origin=(12.0, -30.0, 40.0)):
    """A volume node holding `array` ([k, j, i]) with an oblique-free LPS-like orientation and a non-trivial origin."""
    node = scene.AddNewNodeByClass(node_class, name)
    node.SetAndObserveImageData(vtk.vtkImageData())
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.SetSpacing(*spacing)
    node.SetOrigin(*origin)
    directions = vtk.vtkMatrix4x4()
    directions.SetElement(0, 0, -1.0)
    directions.SetElement(1, 1, -1.0)
    node.SetIJKToRASDirectionMatrix(directions)
    node.CreateDefaultDisplayNodes()
    return node


@pytest.fixture
def ct_with_segmentation(scene):
    """A CT-like volume in a patient/study and a segmentation on it with two named, coloured segments.

    Returns (volume, segmentation, expected label array where liver=1 and tumour=2).
    """
    from RaGANModuleLib import scene_files

    rng = np.random.default_rng(3)
    image = rng.integers(-1000, 1500, size=(12, 40, 48)).astype(np.int16)
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[2:10, 8:30, 10:40] = 1
    labels[4:7, 12:18, 20:26] = 2
    volume = make_volume(scene, "vtkMRMLScalarVolumeNode", "CT chest", image)
    temporary = make_volume(scene, "vtkMRMLLabelMapVolumeNode", "tmp", labels)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT chest segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    assert scene_files.segmentations_logic(scene).ImportLabelmapToSegmentationNode(temporary, segmentation)
    scene.RemoveNode(temporary)
    first, second = scene_files.segment_ids(segmentation)
    segmentation.GetSegmentation().GetSegment(first).SetName("liver")
    segmentation.GetSegmentation().GetSegment(first).SetColor(0.9, 0.4, 0.3)
    segmentation.GetSegmentation().GetSegment(second).SetName("tumour")
    segmentation.GetSegmentation().GetSegment(second).SetColor(0.2, 0.8, 0.1)

    hierarchy = scene_files.subject_hierarchy(scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient 1")
    study = hierarchy.CreateStudyItem(patient, "Study 1")
    for node in (volume, segmentation):
        hierarchy.SetItemParent(scene_files.hierarchy_item(scene, node), study)
    return volume, segmentation, labels


class _Settings:
    """qt.QSettings as the module uses it: a key -> value store shared by all instances."""

    values: dict = {}

    def value(self, key, default=None):
        return self.values.get(key, default)

    def setValue(self, key, value):
        self.values[key] = value


@pytest.fixture(scope="module")
def ragan_module(tmp_path_factory):
    """RaGAN.py imported outside Slicer: the few Slicer/Qt names it needs at import time are stand-ins, so its Logic
    (which does the module's work through RaGANModuleLib) runs against a real MRML scene.

    The trainer Python is set in the stand-in settings to this test's Python, as a user would set it in the
    Environment panel.
    """
    import types

    stand_ins = {
        "qt": types.SimpleNamespace(QSettings=_Settings),
        "slicer.ScriptedLoadableModule": types.SimpleNamespace(
            ScriptedLoadableModule=type(
                "ScriptedLoadableModule", (), {"__init__": lambda self, parent: setattr(self, "parent", parent)}
            ),
            ScriptedLoadableModuleLogic=type("ScriptedLoadableModuleLogic", (), {}),
            ScriptedLoadableModuleTest=type("ScriptedLoadableModuleTest", (), {}),
            ScriptedLoadableModuleWidget=type("ScriptedLoadableModuleWidget", (), {}),
        ),
        "slicer.parameterNodeWrapper": types.SimpleNamespace(
            parameterNodeWrapper=lambda cls: cls, Choice=lambda *a: a, WithinRange=lambda *a: a
        ),
        "slicer.i18n": types.SimpleNamespace(tr=lambda text: text, translate=lambda context, text: text),
    }
    app = types.SimpleNamespace(
        slicerHome=str(tmp_path_factory.mktemp("slicer-home")),
        testingEnabled=lambda: True,
        startupEnvironment=None,
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, module in stand_ins.items():
            patch.setitem(sys.modules, name, module)
        patch.setattr(slicer, "app", app, raising=False)
        patch.setattr(slicer.util, "startupEnvironment", lambda: dict(__import__("os").environ))
        patch.setattr(_Settings, "values", {"RaGAN/TrainerPython": sys.executable})
        sys.modules.pop("RaGAN", None)
        import RaGAN

        yield RaGAN
        sys.modules.pop("RaGAN", None)
