"""Fixtures of the Slicer module's tests: a real MRML scene (slicer-core), cases in it, and RaGAN.py importable.

Helpers that test files import live in slicer_test_support.py (a conftest is not meant to be imported by name).
"""

import os
import sys
import unittest
from pathlib import Path

import numpy as np
import pytest


def _import_slicer_without_this_folder():
    """Import slicer-core's `slicer` package while the folder holding this one (Testing/) is off sys.path.

    The package extends itself with every folder named "slicer" on sys.path and imports each module in it; pytest puts
    Testing/ on sys.path (for Testing/conftest.py and ragan_testing.py), which would make these test files part of
    `slicer`.
    """
    here = Path(__file__).resolve().parent
    hidden = [(i, p) for i, p in enumerate(sys.path) if Path(p or os.getcwd()).resolve() == here.parent]
    for _, entry in reversed(hidden):
        sys.path.remove(entry)
    try:
        return pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
    finally:
        for index, entry in hidden:
            sys.path.insert(index, entry)


slicer = _import_slicer_without_this_folder()
vtk = pytest.importorskip("vtk")

from slicer_test_support import TINY_TRAINING, make_volume, module_logic  # noqa: E402  (after slicer, see above)


@pytest.fixture
def scene():
    """An empty scene as Slicer starts with: it already has its subject hierarchy node."""
    scene = slicer.vtkMRMLScene()
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    return scene


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


@pytest.fixture(scope="session")
def conditional_run(tmp_path_factory) -> Path:
    """A run folder whose tiny model was trained in the module's default, conditional mode by the module's logic, as
    the Train button does, on the phantom case `demo_data.add_phantom_case(scene, seed=2, shape=(8, 64, 64))` (a test
    makes the same case in its own scene). test_painting.py paints with it and test_trainer_job.py generates from it;
    one training serves both. Never changed: a test writes only new generated-NNN / painted-NNN folders into it. It
    has the conditional generator without the options of spec version 4 (zero padding, no noise, no intensity term),
    so that their off settings train and generate too (the library's conditional runs have them on)."""
    from RaGANModuleLib import demo_data, training_cases
    from RaGANModuleLib.trainer_job import JobState

    scene = slicer.vtkMRMLScene()
    volume, segmentation = demo_data.add_phantom_case(scene, seed=2, shape=(8, 64, 64))
    cases = [training_cases.TrainingCase(volume, segmentation)]
    options = TINY_TRAINING | {"mode": "conditional", "border_padding": "zero", "pixel_noise": False}
    options |= {"class_intensity": 0.0}
    job, run = module_logic().startTraining(scene, cases, options, tmp_path_factory.mktemp("conditional"), "cpu")
    assert job.wait(timeout_s=300) == JobState.DONE, f"{job.message}\n{job.log_tail()}"
    return run


@pytest.fixture(scope="module")
def ragan_module():
    """RaGAN.py imported outside Slicer, for the one test of what it declares to Slicer (test_module_logic.py). Its
    import needs stand-ins for Qt (`qt`) and for the parts of Slicer built on Qt that slicer-core lacks (the
    ScriptedLoadableModule classes, parameterNodeWrapper, i18n, slicer.app); nothing else is stood in, and only
    here. What RaGAN.py calls lives in RaGANModuleLib, tested on slicer-core's real scene without them."""
    import types

    class GuiClass:
        def __init__(self, parent=None):
            super().__init__()  # as Slicer's ScriptedLoadableModuleLogic does
            self.parent = parent

    stand_ins = {
        "qt": types.SimpleNamespace(),
        "slicer.ScriptedLoadableModule": types.SimpleNamespace(
            ScriptedLoadableModule=GuiClass,
            ScriptedLoadableModuleLogic=GuiClass,
            ScriptedLoadableModuleTest=unittest.TestCase,
            ScriptedLoadableModuleWidget=GuiClass,
        ),
        "slicer.parameterNodeWrapper": types.SimpleNamespace(
            parameterNodeWrapper=lambda cls: cls,
            parameterPack=lambda cls: cls,
            Choice=lambda *a: a,
            WithinRange=lambda *a: a,
        ),
        "slicer.i18n": types.SimpleNamespace(tr=str, translate=lambda context, text: text),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, module in stand_ins.items():
            patch.setitem(sys.modules, name, module)
        app = types.SimpleNamespace(connections=[])
        app.connect = lambda signal, slot: app.connections.append((signal, slot))  # Qt's connection, recorded
        patch.setattr(slicer, "app", app, raising=False)
        sys.modules.pop("RaGAN", None)
        import RaGAN

        yield RaGAN
        sys.modules.pop("RaGAN", None)
