"""What the panel shows (RaGANModuleLib/panel.py), without Qt: the cases table on a real scene and which buttons can be
pressed. The job views are tested on real trainer jobs in test_trainer_job.py."""

from pathlib import Path

from RaGANModuleLib import demo_data, panel, training_cases
from RaGANModuleLib.environment import TrainerCheck
from RaGANModuleLib.trainer_job import JobState, TrainerJob
from slicer_test_support import module_logic

READY = TrainerCheck(True, "TensorFlow 2.21.0, Keras 3.15.1, Python 3.12.1", {})
NOT_READY = TrainerCheck(False, "tensorflow is not installed", {})


def test_cases_are_added_once_and_counted_along_the_axis(scene):
    first = training_cases.TrainingCase(*demo_data.add_phantom_case(scene, seed=0, shape=(6, 64, 64)))
    second = training_cases.TrainingCase(*demo_data.add_phantom_case(scene, seed=1, shape=(6, 64, 64)))

    cases = panel.with_cases([first], [second, first, second])

    assert cases == [first, second], "a case already in the list is not added again"
    rows, summary = panel.cases_table(scene, cases, "axial")
    assert [row[:2] for row in rows] == [("RaGAN phantom 0", "RaGAN phantom 0 segmentation")] * 1 + [
        ("RaGAN phantom 1", "RaGAN phantom 1 segmentation")
    ]
    total = sum(int(row[2]) for row in rows)
    assert 0 < total <= 12 and summary == f"2 case(s), {total} labelled axial slices."
    assert panel.cases_table(scene, [], "axial") == ([], "No training cases yet.")


def test_buttons_follow_the_trainer_the_jobs_and_the_inputs(scene, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text("{}")
    inputs = {"hasCases": True, "modelFolder": model, "paintReason": None, "paintSegmentation": True}

    idle = panel.buttons(READY, None, None, None, None, exportFolder=tmp_path, **inputs)
    assert all(button.enabled for button in idle.values()), idle
    assert (idle["trainButton"].text, idle["trainButton"].toolTip) == ("Train", "Start training")

    blocked = panel.buttons(NOT_READY, None, None, None, None, exportFolder=None, **inputs)
    assert not any(blocked[name].enabled for name in ("trainButton", "resumeButton", "generateButton", "paintButton"))
    assert blocked["trainButton"].toolTip == "tensorflow is not installed" and not blocked["exportButton"].enabled
    assert blocked["paintButton"].toolTip == "Not available: tensorflow is not installed"

    job = TrainerJob(["train"], "python", tmp_path)
    job.state = JobState.RUNNING  # as poll() sets it when the child's first event arrives
    training = panel.TrainingView(job, scene)
    running = panel.buttons(READY, training, None, None, None, exportFolder=tmp_path, **inputs)
    assert (running["trainButton"].enabled, running["trainButton"].text) == (True, "Stop")
    assert not running["resumeButton"].enabled
    job.state = JobState.STOPPING
    assert not panel.buttons(READY, training, None, None, None, exportFolder=tmp_path, **inputs)["trainButton"].enabled

    noModel = panel.buttons(READY, None, None, None, None, exportFolder=tmp_path, **inputs | {"modelFolder": None})
    assert not noModel["generateButton"].enabled
    joint = panel.buttons(READY, None, None, None, None, exportFolder=tmp_path, **inputs | {"paintReason": "joint"})
    assert not joint["paintButton"].enabled and joint["paintButton"].toolTip == "Not available: joint"
    noCases = panel.buttons(READY, None, None, None, None, exportFolder=tmp_path, **inputs | {"hasCases": False})
    assert not noCases["trainButton"].enabled


def test_the_paint_reason_is_read_again_only_when_model_json_changed(tmp_path):
    import json
    import os

    reason = panel.PaintReason()
    assert "choose a model folder" in reason(None)
    assert "it has no model.json" in reason(tmp_path)
    model = tmp_path / "model.json"
    model.write_text("{}")
    unreadable = reason(tmp_path)
    assert "model.json" in unreadable and "has no model.json" not in unreadable, "a new file is read"
    stamp = model.stat().st_mtime_ns
    model.write_text(json.dumps({"format": 1}))
    os.utime(model, ns=(stamp, stamp))
    assert reason(tmp_path) == unreadable, "the same modification time: not read again"
    os.utime(model, ns=(stamp + 10**9, stamp + 10**9))
    assert reason(tmp_path) != unreadable


def test_a_job_that_cannot_start_is_a_failure_with_its_reason(scene, tmp_path):
    """A trainer command that does not exist: the view ends at once, failed, with the reason to show."""
    logic = module_logic(str(tmp_path / "no-such-python"))
    job = logic._job(["info", "--events", "json"], "cpu", None)
    view = panel.EnvironmentView(job)
    assert view.status == "Asking the trainer's Python (loading TensorFlow)..."
    assert view.poll() and not view.poll(), "the end is reported once"
    assert "could not start" in view.failure and "no-such-python" in view.failure
    assert view.status.startswith("the trainer's Python cannot run RaGAN: could not start")


def test_folder_parameters_and_durations_read_as_people_expect():
    assert panel.folder_or_none("") is None and panel.folder_or_none(".") is None
    assert panel.folder_or_none("/data/run") == Path("/data/run")
    assert (panel.duration(75), panel.duration(3 * 3600 + 120)) == ("1m15s", "3h02m")
