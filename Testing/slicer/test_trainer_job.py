"""The trainer child process, driven by the module's job control: events in order, Stop, kill, failures.

The real trainer runs on tiny settings (64x64 slices, a few steps) where TensorFlow is importable. Two stand-in
trainers (a few lines of Python in tmp_path) check what the real one should never do: ignore a stop request while a
grandchild holds on, and crash.
"""

import json
import os
import re
import signal
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest
from RaGANModuleLib import demo_data, environment, panel, results, scene_files, training_cases
from RaGANModuleLib.panel_actions import PanelActions
from RaGANModuleLib.trainer_job import JobState, TrainerJob, train_arguments
from slicer_test_support import TINY_TRAINING, module_logic, needs_trainer, view_until_ended


def stand_in_trainer(tmp_path, main_code: str):
    """A package named RaGANLib in tmp_path whose `python -m RaGANLib` runs `main_code`."""
    package = tmp_path / "standin" / "RaGANLib"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(textwrap.dedent(main_code))
    return package.parent


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


@pytest.mark.skipif(os.name == "nt", reason="process groups are POSIX; Windows uses taskkill /T")
def test_a_child_that_ignores_stop_is_killed_with_its_whole_process_tree(tmp_path):
    """Like PythonSlicer (a launcher) running python-real: both must end, not only the launcher."""
    library = stand_in_trainer(
        tmp_path,
        """
        import json, subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(json.dumps({"event": "started", "version": 1, "grandchild": grandchild.pid}), flush=True)
        time.sleep(120)  # ignores the STOP file
        """,
    )
    run = tmp_path / "run"
    run.mkdir()
    job = TrainerJob(["train"], python=sys.executable, run_folder=run, grace_s=1.0, library_parent=library)
    job.start()
    deadline = time.monotonic() + 30
    while not job.events and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.05)
    assert job.state == JobState.RUNNING
    grandchild = job.events[0]["grandchild"]

    job.request_stop()
    assert (run / "STOP").exists() and job.state == JobState.STOPPING
    assert job.wait(timeout_s=15) == JobState.STOPPED
    assert "killed" in job.message
    time.sleep(0.2)
    assert not process_alive(grandchild), "the grandchild (python-real behind a launcher) must be killed too"


def test_a_crashing_child_is_a_failure_with_its_last_words(tmp_path):
    library = stand_in_trainer(
        tmp_path,
        """
        import sys
        print("not json: loading data", flush=True)
        print("Traceback: cannot open /data/ct.nrrd", file=sys.stderr, flush=True)
        sys.exit(1)
        """,
    )
    job = TrainerJob(["train"], python=sys.executable, library_parent=library)
    job.start()
    assert job.wait(timeout_s=30) == JobState.FAILED
    assert job.exit_code == 1
    assert "exited with code 1" in job.message and "cannot open /data/ct.nrrd" in job.message
    assert "not json: loading data" in job.log_tail()


def test_a_missing_interpreter_is_a_failure_not_an_exception(tmp_path):
    job = TrainerJob(["info"], python=str(tmp_path / "no-such-python"))
    job.start()
    assert job.state == JobState.FAILED and "could not start" in job.message


def test_cpu_choice_hides_gpus_and_the_library_is_on_the_path(tmp_path):
    job = TrainerJob(["info"], python=sys.executable, device="cpu", environment={"PYTHONPATH": "/elsewhere"})
    environment = job.environment()
    assert environment["CUDA_VISIBLE_DEVICES"] == "-1"
    first, rest = environment["PYTHONPATH"].split(os.pathsep, 1)
    assert os.path.isfile(os.path.join(first, "RaGANLib", "__init__.py")) and rest == "/elsewhere"
    assert job.command[:3] == [sys.executable, "-m", "RaGANLib"]


# The real trainer.


def start_training(scene, run, **options) -> TrainerJob:
    volume, segmentation = demo_data.add_phantom_case(scene, seed=1, shape=(12, 64, 64))
    exported = training_cases.export_cases(scene, [training_cases.TrainingCase(volume, segmentation)], run)
    training_cases.write_spec(run, exported, TINY_TRAINING | options)
    job = TrainerJob(train_arguments(run), python=sys.executable, run_folder=run, device="cpu", grace_s=20)
    job.start()
    return job


def wait_for(job: TrainerJob, kind: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not job.state.final:
        for event in job.poll():
            if event["event"] == kind:
                return event
        time.sleep(0.1)
    raise AssertionError(f"no '{kind}' event; state {job.state}, {job.message}\n{job.log_tail()}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run of a phantom case, started by the module's Logic as the Train button does."""
    import slicer

    scene = slicer.vtkMRMLScene()
    volume, segmentation = demo_data.add_phantom_case(scene, seed=1, shape=(12, 64, 64))
    logic = module_logic()
    cases = [training_cases.TrainingCase(volume, segmentation)]
    job, run = logic.startTraining(scene, cases, TINY_TRAINING, tmp_path_factory.mktemp("trained"), "cpu")
    job.wait(timeout_s=300)
    return scene, run, job, logic


@needs_trainer
def test_training_runs_and_its_events_arrive_in_order(trained):
    _, run, job, _ = trained
    assert job.state == JobState.DONE, f"{job.message}\n{job.log_tail()}"
    kinds = [event["event"] for event in job.events]
    assert set(kinds[:2]) == {"started", "prepared"} and kinds[-1] == "finished"
    assert kinds.index("progress") < kinds.index("checkpoint") and kinds.count("error") == 0
    steps = [event["step"] for event in job.events if event["event"] == "progress"]
    assert steps == sorted(steps) and steps[-1] == TINY_TRAINING["steps"]
    assert all(event["version"] == 1 for event in job.events)
    assert job.finished["reason"] == "completed" and (run / "model" / "model.json").is_file()
    preview = next(event for event in job.events if event["event"] == "preview")
    assert os.path.isfile(preview["image"])
    # What the GUI showed is what the run folder keeps for a person debugging it.
    logged = [json.loads(line)["event"] for line in (run / "events.jsonl").read_text().splitlines()]
    assert logged == kinds


@needs_trainer
def test_the_training_view_turns_the_runs_events_into_progress_previews_losses_and_the_model(trained):
    """The events the panel's timer took from the job while it ran, shown as the panel shows them."""
    scene, run, job, _ = trained
    view = panel.TrainingView(job, scene)
    assert view.status == "Starting the trainer (loading TensorFlow)..." and view.lossChart.rows == 0
    shown = []
    for event in job.events:
        view.take(event)
        shown.append((event["event"], view.status, view.step, view.total))
    started = next(s for s in shown if s[0] == "started")
    assert started[1].startswith("Training on ") and started[3] == TINY_TRAINING["steps"]
    first = next(s for s in shown if s[0] == "progress")
    assert re.fullmatch(r"Step 1/6, [\d.]+ images/s, \d+m\d\ds left\.", first[1]) and first[2:] == (1, 6)
    assert view.lossChart.rows == sum(e["event"] == "progress" for e in job.events)
    volume, label = view.newPreview
    assert volume.GetImageData().GetDimensions()[:2] == (64, 64) and label is not None, "the last preview to show"

    assert view.poll() and not view.poll(), "the end is reported once"
    assert view.failure is None and view.model == run / "model"
    assert view.status == f"Training finished. Model: {run / 'model'}"

    actions = PanelActions(module_logic(start=False), scene)  # the panel's timer: the model becomes the one to use
    parameters = types.SimpleNamespace(modelFolder=Path("an earlier model"))
    ended = actions.watchTraining(job)
    assert actions.poll(parameters) == [ended] and parameters.modelFolder == run / "model"


@needs_trainer
def test_generated_pairs_come_back_as_volume_and_segmentation_with_the_training_names(trained):
    """Through the generate view as the panel does: what to load comes from the job's `finished` event."""
    scene, run, _, logic = trained
    source = scene.GetFirstNodeByName("RaGAN phantom 1")
    job, out = logic.startGenerate(run / "model", count=3, seed=5, device="cpu")
    assert out.parent == run, "generated slices are kept beside the model they came from"
    view = panel.GenerateView(job, run / "model", out)
    view_until_ended(view, 180)
    assert view.failure is None, f"{job.message}\n{job.log_tail()}"
    assert view.outputs == job.finished["outputs"] and view.status == "Generated; loading..."

    volume, segmentation = logic.loadGenerated(scene, view.outputs, view.modelFolder, sourceNode=source)
    view.loaded(volume)
    assert view.status.startswith("Loaded 'RaGAN synthetic image' (3 slices).")

    grid = results.read_model(run / "model").grid
    assert volume.GetImageData().GetDimensions() == (grid.size, grid.size, 3)
    assert np.allclose(volume.GetSpacing()[:2], grid.spacing)
    image = _array(volume)
    assert image.min() >= -1100 and image.max() <= 3100, "intensities in source units (HU), not [-1, 1]"
    segments = [segmentation.GetSegmentation().GetSegment(i) for i in scene_files.segment_ids(segmentation)]
    assert sorted(s.GetName() for s in segments) == ["lesion", "organ", "vessel"]
    organ = next(s for s in segments if s.GetName() == "organ")
    assert np.allclose(organ.GetColor(), (0.85, 0.45, 0.3), atol=1e-3)
    hierarchy = scene_files.subject_hierarchy(scene)
    folder = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(volume))
    assert hierarchy.GetItemName(folder) == "RaGAN synthetic"
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(segmentation)) == folder


@needs_trainer
def test_generate_with_extra_lesions_from_a_conditional_model_records_them_and_loads_into_the_scene(
    scene, conditional_run
):
    """Generate pressed with "Extra lesions / thin structures per slice" at 1 (PanelActions.generate, as the button
    does) on the module's default, conditional model: the real child runs `generate --add-rare 1`, its
    generation.json says so, and the volume and segmentation come into the scene beside the case."""
    case = training_cases.TrainingCase(*demo_data.add_phantom_case(scene, seed=2, shape=(8, 64, 64)))
    actions = PanelActions(module_logic(), scene)

    actions.generate(conditional_run / "model", 3, 4, "cpu", [case], 1)
    view = actions.generating
    view_until_ended(view, 180)  # as the panel's timer polls it

    assert view.failure is None, f"{view.job.message}\n{view.job.log_tail()}"
    assert view.job.arguments[5:8] == ["4", "--add-rare", "1"]
    settings = json.loads((view.folder / "generation.json").read_text())
    assert settings == {"count": 3, "seed": 4, "add_rare": 1, "rare_classes": ["lesion", "vessel"]}
    source, volume, segmentation, axis = actions.load(view)
    assert source == case and axis == "axial" and volume.GetImageData().GetDimensions() == (64, 64, 3)
    names = sorted(
        s.GetName() for s in map(segmentation.GetSegmentation().GetSegment, scene_files.segment_ids(segmentation))
    )
    assert names == ["lesion", "organ", "vessel"] and view.status.startswith(f"Loaded '{volume.GetName()}' (3 slices).")


@needs_trainer
def test_stop_ends_the_child_within_seconds_and_leaves_a_checkpoint_to_resume_from(scene, tmp_path):
    run = tmp_path / "run"
    job = start_training(scene, run, steps=5000, checkpoint_every=1000, log_every=1)
    wait_for(job, "progress")
    wait_for(job, "progress")  # a step or two in: stopping must save work, not just exit

    asked = time.monotonic()
    job.request_stop()
    state = job.wait(timeout_s=20)

    assert state == JobState.STOPPED, f"{job.message}\n{job.log_tail()}"
    assert time.monotonic() - asked < 15
    assert job.exit_code == 0 and job.finished["reason"] == "stopped"
    assert list((run / "checkpoints").glob("ckpt-*.npz")), "a stopped run must leave a checkpoint to resume from"
    assert (run / "model" / "model.json").is_file()
    stopped_at = job.finished["step"]

    # Resume (the panel's "Resume run..."): the same folder goes on from the checkpoint, not from step 0.
    resumed = TrainerJob(train_arguments(run, resume=True), python=sys.executable, run_folder=run, device="cpu")
    resumed.start()
    started = wait_for(resumed, "started")
    first = wait_for(resumed, "progress")
    resumed.request_stop()
    assert resumed.wait(timeout_s=20) == JobState.STOPPED, resumed.log_tail()
    assert started["resumed"] is True and started["step"] == stopped_at
    assert first["step"] == stopped_at + 1


@needs_trainer
@pytest.mark.skipif(os.name == "nt", reason="kills with a POSIX signal")
def test_a_killed_child_is_reported_as_a_failure_with_its_message(scene, tmp_path):
    job = start_training(scene, tmp_path / "run", steps=5000)
    wait_for(job, "started")

    os.killpg(job.pid, signal.SIGKILL)  # as the OOM killer or a user's kill -9 would
    state = job.wait(timeout_s=20)

    assert state == JobState.FAILED
    assert "killed by signal 9" in job.message
    assert "started" in job.log_tail()  # train.log: what the person debugging it reads


@needs_trainer
def test_an_error_event_is_a_failure_with_the_trainers_own_words(scene, tmp_path):
    """Bad input: the trainer says what is wrong (exit code 2); the panel shows exactly that."""
    run = tmp_path / "run"
    volume, segmentation = demo_data.add_phantom_case(scene, seed=2, shape=(6, 64, 64))
    exported = training_cases.export_cases(scene, [training_cases.TrainingCase(volume, segmentation)], run)
    training_cases.write_spec(run, exported, TINY_TRAINING)
    (run / exported.pairs[0][0]).unlink()  # the image went missing after export

    job = TrainerJob(train_arguments(run), python=sys.executable, run_folder=run, device="cpu")
    job.start()
    view = panel.TrainingView(job, scene)
    view_until_ended(view, 120)

    assert job.state == JobState.FAILED and job.exit_code == 2
    assert "case-000_image.nrrd" in job.message and "(bad_input)" in job.message
    assert view.failure == job.message and view.status == f"Training failed: {job.message}" and view.model is None


@needs_trainer
def test_environment_check_asks_the_child_what_tensorflow_and_device_it_sees():
    job = environment.environment_check(sys.executable, device="cpu")
    assert job.wait(timeout_s=120) == JobState.DONE, job.message
    ready, summary = environment.describe_environment(job)
    assert ready and "TensorFlow" in summary and "CPU" in summary


def _array(volume):
    import slicer

    return slicer.util.arrayFromVolume(volume)


@needs_trainer
@pytest.mark.skipif(os.name == "nt", reason="the stand-in trainer command is a shell script")
def test_a_trainer_command_runs_ragan_in_place_of_the_local_python(tmp_path):
    """The Environment panel's trainer command (`ssh gpu-box .../python -m RaGANLib`, `docker run ... IMAGE`) is
    run with the arguments instead of the local Python: here a wrapper script in a folder with a space in its name
    notes its arguments and runs this Python's RaGANLib, while the chosen local Python does not exist."""
    folder = tmp_path / "remote host"
    folder.mkdir()
    wrapper = folder / "ragan"
    wrapper.write_text(f'#!/bin/sh\necho "$@" > "{folder}/arguments"\nexec "{sys.executable}" -m RaGANLib "$@"\n')
    wrapper.chmod(0o755)
    command = environment.trainer_command(f"'{wrapper}'")
    assert command == [str(wrapper)]
    check = environment.check_trainer_python(str(tmp_path / "no-such-python"), prefix=command)
    assert check.ready, check.reason
    assert (folder / "arguments").read_text().split() == ["info", "--events", "json"]
    assert check.reason.startswith(f"The trainer command ({command[0]!r})") and check.versions["device"] == "CPU"
    with pytest.raises(environment.TrainerNotReady, match="the trainer command cannot be read"):
        environment.trainer_command("ssh 'gpu-box")
