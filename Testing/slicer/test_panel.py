"""What the panel shows and does, without Qt: the cases table on a real scene, which buttons can be pressed (panel.py),
and what the buttons ask of the logic and do when a job ends (panel_actions.py). The job views are tested on real
trainer jobs in test_trainer_job.py, a generate result loaded and exported in test_results_to_scene.py."""

import sys
import types
from pathlib import Path

import pytest
from RaGANModuleLib import demo_data, painting, panel, training_cases
from RaGANModuleLib.environment import TrainerCheck
from RaGANModuleLib.panel_actions import NeedsInput, PanelActions
from RaGANModuleLib.trainer_job import JobState, TrainerJob
from slicer_test_support import model_folder, module_logic

READY = TrainerCheck(True, "TensorFlow 2.21.0, Keras 3.15.1, Python 3.12.1", {})
NOT_READY = TrainerCheck(False, "tensorflow is not installed", {})


def test_cases_are_added_once_and_counted_along_the_axis(scene):
    first = training_cases.TrainingCase(*demo_data.add_phantom_case(scene, seed=0, shape=(6, 64, 64)))
    second = training_cases.TrainingCase(*demo_data.add_phantom_case(scene, seed=1, shape=(6, 64, 64)))

    cases = training_cases.with_cases([first], [second, first, second])

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

    reason = panel.ModelReason(painting.paint_unavailable_reason)
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


def test_the_panels_requests_say_what_is_missing_and_start_nothing(scene, tmp_path):
    """Buttons pressed before their inputs are chosen: a warning naming what to choose (NeedsInput), or the logic's
    refusal; no view, no folder."""
    actions = PanelActions(module_logic(start=False), scene)
    assert actions.logTail() == "Nothing has run yet." and actions.statusTexts() == {}
    with pytest.raises(NeedsInput, match="Select an image volume and its label first"):
        actions.chosenCase(None, None)
    with pytest.raises(NeedsInput, match="No volume in the scene has a segmentation or labelmap"):
        actions.labelledCases([])
    with pytest.raises(NeedsInput, match="Choose a model folder"):
        actions.generate(".", 4, 0, "cpu", [])
    with pytest.raises(ValueError, match="not a RaGAN model folder"):
        actions.generate(tmp_path, 4, 0, "cpu", [])
    with pytest.raises(ValueError, match="Pick the segmentation to synthesize an image for"):
        actions.paint(None, tmp_path, 0, "cpu")
    assert actions.views() == [] and not list(tmp_path.iterdir())

    volume, segmentation = demo_data.add_phantom_case(scene, seed=0, shape=(4, 64, 64))
    assert actions.chosenCase(volume, segmentation) == training_cases.TrainingCase(volume, segmentation)
    assert actions.labelledCases([]) == [training_cases.TrainingCase(volume, segmentation)]


def test_the_case_buttons_edit_the_parameter_nodes_list_and_the_table_is_counted_when_it_changed(scene):
    """Add, add all, remove and the demo case on the parameter node's fields (here a plain object with them: the
    wrapper needs Qt); the cases table is counted again only when the cases or the slicing axis changed."""
    actions = PanelActions(module_logic(start=False), scene)
    p = types.SimpleNamespace(cases=[], imageVolume=None, labelNode=None, axis="axial", intensity="auto")
    with pytest.raises(NeedsInput, match="Select an image volume and its label first"):
        actions.addChosenCase(p)
    assert actions.casesTable(p) == ([], "No training cases yet.") and actions.casesTable(p) is None

    first = actions.addDemoCase(p)
    assert (first.GetName(), p.imageVolume, p.labelNode.GetName(), p.intensity) == (
        "RaGAN phantom 0",
        first,
        "RaGAN phantom 0 segmentation",
        "ct",
    ), "the demo case is added and chosen, with CT intensities"
    actions.addChosenCase(p)
    actions.addLabelledCases(p)
    assert [case.image for case in p.cases] == [first], "a case already in the list is not added again"
    second = actions.addDemoCase(p)
    assert [case.image for case in actions.cases(p)] == [first, second], "the next demo case has the next seed"
    rows, summary = actions.casesTable(p)
    assert [row[0] for row in rows] == ["RaGAN phantom 0", "RaGAN phantom 1"] and summary.startswith("2 case(s), ")
    assert actions.casesTable(p) is None, "nothing changed: not counted again"
    p.axis = "coronal"
    assert actions.casesTable(p)[1].endswith(" labelled coronal slices.")
    actions.removeCases(p, {0})
    assert [case.image for case in p.cases] == [second] and len(actions.casesTable(p)[0]) == 1


def test_the_widget_states_follow_the_trainer_and_the_training(scene, tmp_path):
    """The widget copies these properties into its widgets by name; None values (as the .ui has it) are left out."""
    actions = PanelActions(module_logic(start=False), scene)
    case = training_cases.TrainingCase(*demo_data.add_phantom_case(scene, seed=0, shape=(4, 64, 64)))
    p = types.SimpleNamespace(
        cases=[case], modelFolder=None, paintSegmentation=None, exportFolder=str(tmp_path), addRare=0
    )

    blocked = actions.widgetStates(NOT_READY, p)
    assert blocked["trainerNotReadyWidget"] == {"visible": True}
    assert blocked["trainerNotReadyLabel"] == {"text": "tensorflow is not installed"}
    assert blocked["trainButton"] == {"enabled": False, "text": "Train", "toolTip": "tensorflow is not installed"}
    assert blocked["resumeButton"] == {"enabled": False} and blocked["exportButton"] == {"enabled": True}
    assert "trainingProgressBar" not in blocked and "trainingStatusLabel" not in blocked, "no training yet"

    actions.trainOrStop([case], {"steps": 10, "size": 64}, str(tmp_path), "cpu")
    training = actions.widgetStates(READY, p)
    assert training["trainerNotReadyWidget"] == {"visible": False}
    assert training["trainingProgressBar"] == {"maximum": 0, "value": 0}
    assert training["trainingStatusLabel"] == {"text": "Starting the trainer (loading TensorFlow)..."}
    assert training["trainButton"] == {"enabled": True, "text": "Stop", "toolTip": "Stop training (saves a checkpoint)"}


def test_train_then_stop_as_the_train_button_does(scene, tmp_path):
    actions = PanelActions(module_logic(start=False), scene)
    case = training_cases.TrainingCase(*demo_data.add_phantom_case(scene, seed=0, shape=(4, 64, 64)))

    view = actions.trainOrStop([case], {"steps": 10, "size": 64}, str(tmp_path), "cpu")

    assert view is actions.training and (tmp_path / "run-001" / "spec.json").is_file()
    assert actions.statusTexts() == {"trainingStatusLabel": "Starting the trainer (loading TensorFlow)..."}
    assert actions.buttons(READY, True, None, None, tmp_path)["trainButton"].text == "Stop"
    assert actions.trainOrStop([case], {}, str(tmp_path), "cpu") is None, "pressed again: stop"
    assert actions.training.status.startswith("Stopping") and not (tmp_path / "run-002").exists()


def test_ended_jobs_are_reported_once_with_the_error_to_show(scene, tmp_path):
    """A trainer's Python that cannot start: the environment check ends with its status only; a generate job's and a
    training's failure is the error the panel shows."""
    logic = module_logic(str(tmp_path / "no-such-python"))
    actions = PanelActions(logic, scene)
    actions.check("cpu")
    actions.generating = actions.result = panel.GenerateView(logic._job(["generate"], "cpu", None), tmp_path, tmp_path)
    actions.watchTraining(logic._job(["train"], "cpu", None))

    ended = actions.poll()

    assert ended == [actions.training, actions.generating, actions.checking] and not actions.running
    assert actions.poll() == [], "each end is reported once"
    assert actions.checking.error is None and "no-such-python" in actions.statusTexts()["environmentStatusLabel"]
    assert "could not start" in actions.generating.error
    assert actions.training.error == actions.training.status and actions.training.status.startswith("Training failed")


def test_extra_lesions_reach_generate_only_when_asked_and_never_start_a_child_for_a_joint_model(scene, tmp_path):
    """Generate pressed with "Extra lesions / thin structures per slice": 0 starts the command it always started, N
    adds `--add-rare N`; with a joint model (which `generate` refuses it for) N > 0 starts nothing, writes nothing
    and says why, while 0 still generates from it."""
    conditional = model_folder(tmp_path / "conditional")
    old = [sys.executable, "-m", "RaGANLib", "generate", str(conditional), "--count", "4", "--seed", "3"]
    actions = PanelActions(module_logic(start=False), scene)

    actions.generate(conditional, 4, 3, "cpu", [], 0)
    first = actions.generating
    actions.generate(conditional, 4, 3, "cpu", [], 2)

    assert first.job.command == [*old, "--out", str(first.folder), "--events", "json"]
    folder = actions.generating.folder
    assert actions.generating.job.command == [*old, "--add-rare", "2", "--out", str(folder), "--events", "json"]

    joint = model_folder(tmp_path / "joint", mode="joint")
    refusing = PanelActions(module_logic(start=False), scene)
    refusing.logic._startJob = lambda job: pytest.fail(f"a child was started: {job.command}")
    with pytest.raises(ValueError) as refused:
        refusing.generate(joint, 4, 3, "cpu", [], 1)
    assert str(refused.value) == (
        f"the model in '{joint}' makes its own labels (a joint model); adding extra lesions / thin structures to its "
        "slices needs a model trained in conditional mode (Training > Advanced > Mode: conditional); set 'Extra "
        "lesions / thin structures per slice' to 0 to generate from this model"
    )
    assert refusing.views() == [] and sorted(p.name for p in (tmp_path / "joint").iterdir()) == ["model"]
    actions.generate(joint, 4, 3, "cpu", [], 0)
    assert "--add-rare" not in actions.generating.job.command


def test_the_extra_lesions_spin_box_says_what_it_does_and_why_a_joint_model_cannot_use_it(scene, tmp_path):
    """Enabled with its description for a conditional model (and with no model yet); for a joint model disabled with
    the reason, or left enabled while it is above 0, so that it can be set back to 0."""
    actions = PanelActions(module_logic(start=False), scene)
    p = types.SimpleNamespace(cases=[], paintSegmentation=None, exportFolder=None, addRare=0)

    def spinBox(modelFolder, addRare=0):
        p.modelFolder, p.addRare = modelFolder, addRare
        return actions.widgetStates(READY, p)["addRareSpinBox"]

    conditional = spinBox(model_folder(tmp_path / "conditional"))
    assert conditional == {"enabled": True, "toolTip": panel.ADD_RARE_TIP} and spinBox(None) == conditional
    for said in ("lesions", "thin structures such as vessels", "lowered the thin vessel", "leave it at 0"):
        assert said in panel.ADD_RARE_TIP, said
    joint = model_folder(tmp_path / "joint", mode="joint")
    reason = (
        f"Not available: the model in '{joint}' makes its own labels (a joint model); adding extra lesions / thin "
        "structures to its slices needs a model trained in conditional mode (Training > Advanced > Mode: conditional)"
    )
    assert spinBox(joint) == {"enabled": False, "toolTip": reason}
    assert spinBox(joint, addRare=2) == {
        "enabled": True,
        "toolTip": reason + ". Set it to 0 to generate from this model.",
    }


def test_the_training_status_keeps_what_the_last_preview_showed(scene, tmp_path):
    """Events as the trainer sends them (test_training.py checks that it does): after a preview, every progress line
    says in words whether the synthetic slices were blurred, grainy or like the real ones."""
    training = panel.TrainingView(TrainerJob(["train"], "python", tmp_path), scene)
    progress = {"event": "progress", "step": 300, "total": 800, "images_per_s": 5.0, "eta_s": 600, "losses": {}}
    training.take(progress)
    assert training.status == "Step 300/800, 5.0 images/s, 10m00s left."
    training.take({"event": "preview", "step": 250, "png": "", "image": "", "label": "", "fine_detail": 0.24})
    training.take(progress)
    assert training.status.endswith(" Last preview (step 250): synthetic slices smoother than the real slices "
                                    "(below 0.5x): blurred, fine structure missing.")  # fmt: skip
    training.take({"event": "preview", "step": 500, "png": "", "image": "", "label": "", "fine_detail": 1.1})
    training.take(progress)
    assert training.status.endswith("Last preview (step 500): synthetic slices within 0.5-1.5x of the real slices.")
    assert training.newPreview is None, "no preview stack was written, so nothing to show"
