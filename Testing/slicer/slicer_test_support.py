"""What the Slicer module's tests share: where things are, the tiny training settings, and volumes made from arrays.

RaGAN/ goes on sys.path as Slicer puts it there, so tests import the module's helper package as `RaGANModuleLib`.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
MODULE_FOLDER = REPOSITORY / "RaGAN"
sys.path.insert(0, str(MODULE_FOLDER))


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
# As TINY (Testing/ragan_testing.py): the joint mode without the segmenter term; the module's default mode,
# conditional, trains in conftest.py's conditional_run.
TINY_TRAINING |= {"mode": "joint", "seg_consistency": 0.0}


CLASSES = [
    {"index": 0, "value": 0, "name": "background", "color": [0, 0, 0]},
    {"index": 1, "value": 1, "name": "liver", "color": [0.9, 0.4, 0.3]},
    {"index": 2, "value": 7, "name": "tumour", "color": [0.2, 0.8, 0.1]},
]


def model_folder(parent: Path, mode="conditional") -> Path:
    """`parent`/model holding only a model.json (conditional or joint): what the module reads of a model before it
    starts a child, without a trained generator."""
    folder = parent / "model"
    folder.mkdir(parents=True)
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


def make_volume(scene, node_class, name, array, spacing=(0.8, 0.9, 2.5), origin=(12.0, -30.0, 40.0)):
    """A volume node holding `array` ([k, j, i]) with an oblique-free LPS-like orientation and a non-trivial origin."""
    import slicer
    import vtk

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


def module_logic(python: str = sys.executable, start=True):
    """The module's logic (RaGANLogic without the Environment panel's settings) with `python` as the trainer's Python,
    as a user would choose it there, and this process's environment. start=False: jobs are made but their child is
    not started (tests with it check what would be started)."""
    from RaGANModuleLib.logic import ModuleLogic, Trainer
    from RaGANModuleLib.trainer_job import TrainerJob

    return ModuleLogic(Trainer(python, dict(os.environ)), TrainerJob.start if start else lambda job: None)


def view_until_ended(view, timeout_s: float) -> None:
    """Poll a job view (RaGANModuleLib.panel) as the panel's timer does until it reports the job's end."""
    import time

    deadline = time.monotonic() + timeout_s
    while not view.poll():
        assert time.monotonic() < deadline, f"the job did not end within {timeout_s} s: {view.status}"
        time.sleep(0.1)


def bare_python(folder) -> str:
    """A real Python without TensorFlow or Keras: a fresh virtual environment without pip."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    return str(Path(folder) / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
