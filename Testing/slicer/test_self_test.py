"""The in-Slicer self-test (RaGANModuleLib/self_test.py, RaGANTest in RaGAN.py as test_module_logic.py checks) run
here on a real MRML scene: without TensorFlow (as on Slicer's extension build machines) its TensorFlow-free parts run
and it says what it left out; with TensorFlow the training round trip runs too."""

import json
import sys
import unittest

import pytest
import slicer
from RaGANModuleLib.self_test import SelfTest
from slicer_test_support import bare_python, module_logic, needs_trainer


class SelfTestHere(SelfTest, unittest.TestCase):
    """SelfTest as RaGANTest runs it in Slicer, with the trainer's Python given and delayDisplay's messages kept (in
    Slicer they show on screen and in the log)."""

    __test__ = False  # pytest would collect the parts one by one; runTest runs them as Slicer does
    python = sys.executable
    messages: list = []

    def logic(self):
        return module_logic(self.python)

    def delayDisplay(self, message, msec=None):
        self.messages.append(message)


@pytest.fixture
def self_test(scene, tmp_path, monkeypatch):
    """The self-test on `scene` (as slicer.mrmlScene) with Slicer's temporary folder in tmp_path; run(python) returns
    its messages."""
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    (tmp_path / "slicer-temp").mkdir()
    monkeypatch.setattr(slicer, "app", type("App", (), {"temporaryPath": str(tmp_path / "slicer-temp")}), raising=False)
    monkeypatch.setattr(SelfTestHere, "messages", [])

    def run(python):
        monkeypatch.setattr(SelfTestHere, "python", python)
        SelfTestHere().runTest()
        return SelfTestHere.messages

    return run


def test_without_tensorflow_the_self_test_runs_its_other_parts_and_says_which(self_test, tmp_path):
    messages = self_test(bare_python(tmp_path / "bare"))

    last = messages[-1]
    assert last.startswith("RaGAN self-test passed. Parts run: scene export; stored synthetic result loaded and "), last
    assert "Not run: the training round trip, because" in last and "tensorflow is not installed" in last
    assert "; segmentation written for a conditional model, stored painted scan loaded." in last
    (dataset,) = (tmp_path / "slicer-temp").glob("RaGANTest-*/Dataset990_RaGANTest")
    assert json.loads((dataset / "dataset.json").read_text())["numTraining"] == 1
    assert not any("Training a few steps" in m for m in messages)


@needs_trainer
def test_with_tensorflow_the_self_test_also_trains_generates_and_loads(self_test):
    messages = self_test(sys.executable)

    assert messages[-1].endswith("; training round trip."), messages[-1]
