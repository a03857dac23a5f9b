"""The module's logic (RaGANModuleLib/logic.py, RaGANLogic in RaGAN.py), the calls the panel and the self-test make, on
a real scene; the parameter node's values; and what RaGAN.py declares to Slicer (its Qt-based parts stood in)."""

import json
import logging
import sys
import types

import pytest
import slicer
from RaGANModuleLib import demo_data, training_cases, training_options
from RaGANModuleLib.environment import TrainerNotReady
from RaGANModuleLib.logic import ModuleLogic, Trainer, trainer_from_settings
from RaGANModuleLib.self_test import SelfTest
from slicer_test_support import module_logic


def panel_defaults() -> dict:
    """The parameter node's values as the panel starts (Slicer's Choice and WithinRange only annotate them)."""
    values = training_options.panel_values(lambda items: items, lambda low, high: (low, high))
    return {name: default for name, (_kind, default) in values.items()}


def test_what_the_module_declares_to_slicer(ragan_module):
    """RaGAN.py imported as Slicer imports it: the module's category, help and Sample Data registration, the
    parameter node with the panel's values, the logic made as Slicer makes it (Slicer's ScriptedLoadableModuleLogic
    .__init__ calls super().__init__(): the Qt-free logic must come first), and the self-test as its test class."""
    parent = type("Parent", (), {})()
    ragan_module.RaGAN(parent)
    assert parent.title == "RaGAN" and parent.categories == ["Image Synthesis"]
    assert "synthetic" in parent.helpText
    assert "Needs 3D Slicer 5.10 or 5.12 (Python 3.12)" in parent.helpText, "the supported Slicers are stated"
    assert slicer.app.connections[-1] == ("startupCompleted()", ragan_module.registerSampleData), (
        "the phantom is registered with Sample Data once Slicer has started (demo_data.sample_data_source)"
    )
    defaults = panel_defaults()
    assert {name: getattr(ragan_module.RaGANParameterNode, name) for name in defaults} == defaults
    logic = ragan_module.RaGANLogic()
    assert isinstance(logic, ModuleLogic) and callable(logic.startTraining)
    assert issubclass(ragan_module.RaGANTest, SelfTest) and ragan_module.RaGANTest.logic is not SelfTest.logic


def test_parameter_defaults_are_the_quick_look_preset_and_a_preset_sets_only_its_options():
    from RaGANLib.spec import PRESETS

    defaults = panel_defaults()
    assert defaults["preset"] == "quick look"
    quick = PRESETS["quick look"]
    assert (defaults["size"], defaults["steps"], defaults["batch"]) == (quick["size"], quick["steps"], quick["batch"])
    assert defaults["outputFolder"].name == "RaGAN", "runs go to the user's RaGAN folder, not a temp dir"
    assert defaults["mode"] == "conditional", "the panel trains the mode `ragan train` does by default"
    assert (defaults["device"], defaults["count"], defaults["exportReal"]) == ("auto", 16, True)

    parameters = types.SimpleNamespace(size=64, steps=10, batch=2, seed=7)
    training_options.apply_preset(parameters, "standard")
    assert vars(parameters) == PRESETS["standard"] | {"seed": 7}, "the other options stay as the user left them"
    training_options.apply_preset(parameters, "no such preset")
    assert vars(parameters) == PRESETS["standard"] | {"seed": 7}


def test_train_writes_a_new_run_folder_and_starts_the_chosen_python(scene, tmp_path):
    logic = module_logic(start=False)
    volume, segmentation = demo_data.add_phantom_case(scene, seed=0, shape=(6, 64, 64))
    cases = [training_cases.TrainingCase(volume, segmentation)]

    job, run = logic.startTraining(scene, cases, {"steps": 10, "size": 64}, tmp_path, "cpu")
    second_job, second_run = logic.startTraining(scene, cases, {"steps": 10, "size": 64}, tmp_path, "cpu")

    assert run.name == "run-001" and second_run.name == "run-002", "each training gets its own folder"
    spec = json.loads((run / "spec.json").read_text())
    assert spec["label_names"] == {"1": "organ", "2": "lesion", "3": "vessel"} and spec["steps"] == 10
    assert all((run / path).is_file() for pair in spec["pairs"] for path in pair)
    assert job.command == [
        sys.executable,
        "-m",
        "RaGANLib",
        "train",
        "--spec",
        str(run / "spec.json"),
        "--events",
        "json",
    ]
    assert job.environment()["CUDA_VISIBLE_DEVICES"] == "-1" and job.run_folder == run


def test_options_the_trainer_refuses_leave_no_run_folder(scene, tmp_path):
    logic = module_logic(start=False)
    volume, segmentation = demo_data.add_phantom_case(scene, seed=0, shape=(6, 64, 64))
    cases = [training_cases.TrainingCase(volume, segmentation)]
    with pytest.raises(Exception, match="size must be a multiple of 16"):
        logic.startTraining(scene, cases, {"size": 100}, tmp_path, "auto")
    assert not list(tmp_path.iterdir())


def test_resume_and_generate_refuse_folders_that_are_not_runs_or_models(tmp_path):
    logic = module_logic(start=False)
    with pytest.raises(ValueError, match="not a RaGAN run folder"):
        logic.resumeTraining(tmp_path, "auto")
    with pytest.raises(ValueError, match="not a RaGAN model folder"):
        logic.startGenerate(tmp_path, 4, 0, "auto")
    assert not list(tmp_path.iterdir()), "a refused request leaves nothing behind"

    (tmp_path / "spec.json").write_text("{}")
    job = logic.resumeTraining(tmp_path, "auto")
    assert job.arguments[-1] == "--resume"


def test_the_environment_settings_choose_the_trainer(tmp_path):
    """No chosen Python: Slicer's own PythonSlicer with Slicer's environment; a chosen one gets the environment Slicer
    started with; a trainer command replaces the Python; one that cannot be read stops every job with its reason."""
    asked = []

    def startup_environment():
        asked.append(True)
        return {"PATH": "/usr/bin"}

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "PythonSlicer").write_text("")
    own = trainer_from_settings("", "", tmp_path, startup_environment)
    assert own == Trainer(str(tmp_path / "bin" / "PythonSlicer")) and not asked, "PythonSlicer: Slicer's environment"
    chosen = trainer_from_settings(sys.executable, "ssh gpu-box ragan", tmp_path, startup_environment)
    assert chosen == Trainer(sys.executable, {"PATH": "/usr/bin"}, ("ssh", "gpu-box", "ragan"))
    unreadable = trainer_from_settings(sys.executable, "ssh 'gpu-box", tmp_path, startup_environment)
    assert "the trainer command cannot be read" in unreadable.problem
    logic = ModuleLogic(unreadable, lambda job: pytest.fail("nothing may start"))
    assert not logic.trainerCheck().ready and logic.trainerCheck().reason == unreadable.problem
    with pytest.raises(TrainerNotReady, match="cannot be read"):
        logic.startGenerate(tmp_path, 4, 0, "cpu")


def test_the_logic_logs_what_it_starts_to_slicers_log(scene, tmp_path, caplog):
    volume, segmentation = demo_data.add_phantom_case(scene, seed=0, shape=(6, 64, 64))
    with caplog.at_level(logging.INFO, logger="RaGAN"):
        job, run = module_logic(start=False).startTraining(
            scene, [training_cases.TrainingCase(volume, segmentation)], {"steps": 10, "size": 64}, tmp_path, "cpu"
        )
    assert f"1 training case(s) written to {run}" in caplog.text
    assert f"started {sys.executable} -m RaGANLib train --spec {run / 'spec.json'}" in caplog.text


def test_the_phantom_case_is_offered_in_sample_data_and_made_without_a_download(scene):
    """The source RaGAN.py registers with the Sample Data module once Slicer has started: what Slicer's
    SampleDataSource requires (lists of one length), an icon, and a case made in the scene, offline."""
    source = demo_data.sample_data_source(lambda: scene)

    assert source["category"] == "RaGAN" and source["sampleName"] == "RaGANPhantomCT"
    assert {len(source[key]) for key in ("uris", "fileNames", "nodeNames")} == {0}, "nothing to download"
    from PIL import Image

    assert Image.open(source["thumbnailFileName"]).size == (128, 128)
    source["customDownloader"](None)
    volumes = nodes_of(scene, "vtkMRMLScalarVolumeNode")
    segmentations = nodes_of(scene, "vtkMRMLSegmentationNode")
    assert [v.GetName() for v in volumes] == ["RaGAN phantom 0"] and len(segmentations) == 1


def nodes_of(scene, class_name):
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def test_a_scene_saved_with_the_old_case_lists_keeps_its_cases_once(scene, caplog):
    """Before the RaGANCase parameter pack, the module saved its cases as two parallel node lists (caseImages,
    caseLabels), as Slicer's parameter node wrapper writes a list of nodes; such a scene, saved and opened again, gives
    its cases to the current list once (a pair whose node was deleted left out), and the old parameters are gone."""
    first = demo_data.add_phantom_case(scene, seed=0, shape=(4, 64, 64))
    second = demo_data.add_phantom_case(scene, seed=1, shape=(4, 64, 64))
    gone = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "deleted before the scene was saved")
    old_case_lists(scene, [first[0], second[0], first[0]], [first[1], second[1], gone])
    scene.RemoveNode(gone)
    opened = slicer.vtkMRMLScene()
    opened.SetLoadFromXMLString(1)
    opened.SetSceneXMLString(scene_xml(scene))
    opened.Import()
    parameters = opened.GetFirstNodeByClass("vtkMRMLScriptedModuleNode")

    with caplog.at_level(logging.INFO, logger="RaGAN"):
        cases = training_cases.take_old_scene_cases(parameters)

    assert [case.describe() for case in cases] == [
        "RaGAN phantom 0 + RaGAN phantom 0 segmentation",
        "RaGAN phantom 1 + RaGAN phantom 1 segmentation",
    ]
    assert all(case.image.GetScene() is opened for case in cases), "the nodes of the opened scene"
    assert "2 training case(s) read from a scene an older RaGAN saved (of 3)" in caplog.text, "said in Slicer's log"
    assert not [name for name in parameters.GetParameterNames() if name.startswith(("caseImages", "caseLabels"))]
    assert parameters.GetNodeReference("caseImages_0") is None and parameters.GetNodeReference("caseLabels_1") is None
    assert "caseImages" not in scene_xml(opened), "the old lists are not saved again"
    assert training_cases.take_old_scene_cases(parameters) == [], "read once"


def test_the_cases_of_an_old_scene_join_the_case_list_after_its_own_once(scene):
    """What RaGANLogic.getParameterNode does with them (here on a plain object with the wrapper's `cases`)."""
    first = demo_data.add_phantom_case(scene, seed=0, shape=(4, 64, 64))
    second = demo_data.add_phantom_case(scene, seed=1, shape=(4, 64, 64))
    node = old_case_lists(scene, [first[0], second[0]], [first[1], second[1]])
    parameters = types.SimpleNamespace(cases=[training_cases.TrainingCase(*second)])

    training_cases.adopt_old_scene_cases(node, parameters)
    training_cases.adopt_old_scene_cases(node, parameters)

    assert [case.image for case in parameters.cases] == [second[0], first[0]], "once, and a case already listed kept"


def old_case_lists(scene, images: list, labels: list):
    """A parameter node with the case lists an older RaGAN saved, as Slicer's parameter node wrapper wrote them."""
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    node.SetAttribute("ModuleName", "RaGAN")
    for name, nodes in (("caseImages", images), ("caseLabels", labels)):
        node.SetParameter(f"{name}_len", str(len(nodes)))
        for i, each in enumerate(nodes):
            node.SetParameter(f"{name}_{i}", "")
            node.SetNodeReferenceID(f"{name}_{i}", each.GetID())
    return node


def scene_xml(scene) -> str:
    """The scene as Slicer saves it in a .mrml file."""
    scene.SetSaveToXMLString(1)
    scene.Commit()
    return scene.GetSceneXMLString()
