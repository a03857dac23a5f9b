"""The in-Slicer self-test (RaGANTest in RaGAN.py) run here on a real MRML scene, Slicer's GUI classes stood in:
without TensorFlow (as on Slicer's extension build machines) its TensorFlow-free parts run and it says what it left
out; with TensorFlow the training round trip runs too."""

import json
import sys

import pytest
import slicer
from slicer_test_support import bare_python, needs_trainer


@pytest.fixture
def self_test(ragan_module, scene, tmp_path, monkeypatch):
    """RaGANTest on `scene` (as slicer.mrmlScene) with Slicer's temporary folder in tmp_path; returns its messages."""
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    (tmp_path / "slicer-temp").mkdir()
    monkeypatch.setattr(slicer.app, "temporaryPath", str(tmp_path / "slicer-temp"), raising=False)
    monkeypatch.setattr(ragan_module.RaGANTest, "messages", [])

    def run():
        ragan_module.RaGANTest().runTest()
        return ragan_module.RaGANTest.messages

    return run


def test_without_tensorflow_the_self_test_runs_its_other_parts_and_says_which(
    self_test, ragan_module, tmp_path, monkeypatch
):
    python = bare_python(tmp_path / "bare")
    monkeypatch.setitem(ragan_module.qt.QSettings.values, "RaGAN/TrainerPython", python)

    messages = self_test()

    last = messages[-1]
    assert last.startswith("RaGAN self-test passed. Parts run: scene export; stored synthetic result loaded and "), last
    assert "Not run: the training round trip, because" in last and "tensorflow is not installed" in last
    assert "; segmentation written for a conditional model, stored painted scan loaded." in last
    (dataset,) = (tmp_path / "slicer-temp").glob("RaGANTest-*/Dataset990_RaGANTest")
    assert json.loads((dataset / "dataset.json").read_text())["numTraining"] == 1
    assert not any("Training a few steps" in m for m in messages)


@needs_trainer
def test_with_tensorflow_the_self_test_also_trains_generates_and_loads(self_test, ragan_module, monkeypatch):
    monkeypatch.setitem(ragan_module.qt.QSettings.values, "RaGAN/TrainerPython", sys.executable)

    messages = self_test()

    assert messages[-1].endswith("; training round trip."), messages[-1]
