"""The module's files fit together: the panel has every widget the code uses, the code has no undefined names, and
nothing in the module pulls TensorFlow into Slicer's Python."""

import ast
import glob
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest
from slicer_test_support import MODULE_FOLDER, REPOSITORY

MODULE_SOURCE = MODULE_FOLDER / "RaGAN.py"
UI_FILE = MODULE_FOLDER / "Resources" / "UI" / "RaGAN.ui"


def ui_widgets() -> dict[str, ElementTree.Element]:
    root = ElementTree.parse(UI_FILE).getroot()
    return {widget.get("name"): widget for widget in root.iter("widget")}


def parameter_fields() -> set[str]:
    """The parameter node's fields: the node fields RaGAN.py declares and the values training_options.py adds (the
    panel's settings and the training options from TrainSpec)."""
    from RaGANModuleLib.training_options import PANEL_OPTIONS, PANEL_SETTINGS

    tree = ast.parse(MODULE_SOURCE.read_text())
    parameters = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RaGANParameterNode")
    declared = {n.target.id for n in parameters.body if isinstance(n, ast.AnnAssign)}
    return declared | set(PANEL_SETTINGS) | set(PANEL_OPTIONS)


def test_every_widget_the_module_uses_exists_in_the_ui_file():
    """Widgets the widget names as self.ui.NAME, and the buttons, labels, progress bars, spin boxes and widgets it,
    panel.py and panel_actions.py name by text ("trainButton", "trainingStatusLabel", "addRareSpinBox")."""
    source = MODULE_SOURCE.read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    for text in (
        source,
        *((MODULE_FOLDER / "RaGANModuleLib" / f).read_text() for f in ("panel.py", "panel_actions.py")),
    ):
        used |= set(re.findall(r'"(\w+(?:Button|Label|ProgressBar|Widget|SpinBox))"', text))
    assert len(used) > 15, "the pattern should find the panel's widgets"
    missing = sorted(used - set(ui_widgets()))
    assert not missing, f"RaGAN.py uses widgets that RaGAN.ui does not have: {missing}"


def test_every_bound_widget_names_a_parameter_of_the_parameter_node():
    bound = {}
    for name, widget in ui_widgets().items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[name] = prop.find("string").text
    assert len(bound) >= 15
    unknown = {widget: parameter for widget, parameter in bound.items() if parameter not in parameter_fields()}
    assert not unknown, f"widgets bound to parameters RaGANParameterNode lacks: {unknown}"


def bound_parameter(widget) -> str | None:
    return next(
        (p.find("string").text for p in widget.findall("property") if p.get("name") == "SlicerParameterName"), None
    )


def number_property(widget, name: str) -> int | float | None:
    """A spin box's number: an int of a QSpinBox, a float of a QDoubleSpinBox (<double>)."""
    for prop in (p for p in widget.findall("property") if p.get("name") == name):
        found = prop.find("number")
        return int(found.text) if found is not None else float(prop.find("double").text)
    return None


def test_every_choice_parameter_offers_the_same_items_as_its_combo_box():
    """The wrapper selects combo box items by text: a choice named differently in .ui and in the parameter node (the
    spec, for training options) would never apply."""
    from RaGANModuleLib import training_options

    checked = set()
    for name, widget in ui_widgets().items():
        if widget.get("class") != "QComboBox":
            continue
        items = [item.find("property/string").text for item in widget.findall("item")]
        parameter = bound_parameter(widget)
        if parameter in training_options.PANEL_OPTIONS:
            expected = training_options.panel_choices(parameter)
        else:
            expected = training_options.PANEL_SETTINGS[parameter][2]
        assert items == expected, f"{name}: .ui offers {items}, the parameter node {expected}"
        checked.add(parameter)
    assert {"preset", "device", "axis", "intensity", "slices", "augment", "mode"} <= checked


def test_every_training_option_spin_box_has_the_spec_range_step_and_default():
    """The panel's spin boxes for training options allow what `ragan train` allows (cut to a spin box's int), step by
    the size's multiple, and start at the quick-look preset's values: all read from TrainSpec."""
    from RaGANModuleLib import training_options

    from RaGANLib.spec import OPTIONS

    kinds = {"QSpinBox": int, "QDoubleSpinBox": float}
    spin_boxes = {bound_parameter(w): w for w in ui_widgets().values() if w.get("class") in kinds}
    numbers = [name for name in training_options.PANEL_OPTIONS if training_options.panel_choices(name) is None]
    assert set(numbers) == {"size", "steps", "batch", "seed", "seg_consistency"}
    for name in numbers:
        widget = spin_boxes[name]
        low, high = training_options.panel_range(name)
        assert kinds[widget.get("class")] is type(low), f"{name}: a {widget.get('class')} for a {type(low).__name__}"
        shown = (number_property(widget, "minimum"), number_property(widget, "maximum"))
        assert shown == (low, high), f"{name}: .ui allows {shown}, the spec {low}..{high}"
        assert number_property(widget, "value") == training_options.panel_default(name), name
        multiple = OPTIONS[name].metadata["rule"].get("multiple")
        if multiple:
            assert number_property(widget, "singleStep") == multiple, name


def test_every_panel_setting_spin_box_has_the_parameter_nodes_range_and_default():
    """The Generate section's spin boxes allow what the parameter node allows and start at its default; "Extra lesions
    / thin structures per slice" up to the most `ragan generate --add-rare` takes (RaGANLib's, not a copy)."""
    from RaGANModuleLib import training_options

    from RaGANLib.results.layouts import MAX_ADD_RARE

    spin_boxes = {bound_parameter(w): w for w in ui_widgets().values() if w.get("class") == "QSpinBox"}
    settings = {name: s for name, s in training_options.PANEL_SETTINGS.items() if name in spin_boxes}
    assert set(settings) == {"count", "generateSeed", "addRare"}
    for name, (_kind, default, limits) in settings.items():
        widget = spin_boxes[name]
        shown = (number_property(widget, "minimum"), number_property(widget, "maximum"))
        assert shown == limits and number_property(widget, "value") == default, f"{name}: .ui {shown}, node {limits}"
    assert settings["addRare"][1:] == (0, (0, MAX_ADD_RARE)), "off unless asked for, as `ragan generate`"


def test_any_training_option_can_join_the_panel_with_the_specs_choices_and_range():
    """Adding an option to the panel is `panel=True` on its TrainSpec field (and a widget in RaGAN.ui): its parameter
    node type comes from the spec, whole numbers, other numbers, choices and switches alike."""
    import typing

    from RaGANModuleLib import training_options

    from RaGANLib.spec import OPTIONS

    def choice(items):
        return ("choice", items)

    def within_range(low, high):
        return ("range", low, high)

    shown = {}
    for name, field in OPTIONS.items():
        if field.metadata["choices"] or field.metadata["rule"] or isinstance(field.default, bool):
            shown[name] = training_options.panel_annotation(name, choice, within_range)
    assert typing.get_args(shown["axis"]) == (str, ("choice", ["axial", "coronal", "sagittal"]))
    assert typing.get_args(shown["size"]) == (int, ("range", 64, 512))
    assert typing.get_args(shown["r1_gamma"]) == (float, ("range", 0.0, float(training_options.SPIN_BOX_MAX)))
    assert typing.get_args(shown["class_balance"]) == (float, ("range", 0.0, 1.0))
    assert typing.get_args(shown["lr"])[1][1] == 0.0, "above 0: the spin box starts at 0, the spec refuses it"
    assert typing.get_args(shown["seed"]) == (int, ("range", 0, 2**31 - 1)), "cut to a spin box's int"
    assert shown["xla"] is bool
    assert len(shown) >= 24


def test_ruff_finds_no_undefined_names_in_the_module():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--select", "F821", str(MODULE_FOLDER)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_module_never_imports_tensorflow():
    """Slicer's Python stays free of TensorFlow: no file of the module imports it, and importing the helpers (which
    use RaGANLib's spec, nnU-Net and phantom parts) does not pull it in."""
    for path in MODULE_FOLDER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in ("tensorflow", "keras") for n in names), f"{path} imports {names}"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from RaGANModuleLib import dataset_export, demo_data, environment, results, trainer_job, training_cases;"
        "from RaGANModuleLib import training_options;"
        "from RaGANModuleLib.locations import import_ragan_lib; import_ragan_lib();"
        "import RaGANLib.spec, RaGANLib.data.nnunet, RaGANLib.data.phantom, RaGANLib.data.prepare;"
        "import RaGANLib.results.segmentation_file;"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not heavy, heavy"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(MODULE_FOLDER)], capture_output=True, text=True, cwd=REPOSITORY, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def python_3_9() -> str | None:
    """A Python 3.9 on this machine (Slicer 5.8's Python), if there is one."""
    candidates = [shutil.which("python3.9"), *glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9"))]
    for python in filter(None, candidates):
        answer = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if answer.stdout.strip() == "(3, 9)":
            return python
    return None


def test_an_older_slicer_gets_a_message_naming_the_slicer_it_needs():
    """Slicer 5.8 (Python 3.9) loads RaGAN.py too: the file parses there, and its first act is to say what it needs."""
    source = MODULE_SOURCE.read_text()
    ast.parse(source, feature_version=(3, 9))
    python = python_3_9()
    if python is None:
        pytest.skip("no Python 3.9 on this machine to load the module with")
    code = "import runpy, sys; runpy.run_path(sys.argv[1])"
    result = subprocess.run([python, "-c", code, str(MODULE_SOURCE)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: RaGAN needs 3D Slicer 5.10 or newer (Python 3.12)"), result.stderr
    assert "Python 3.9" in last and "SyntaxError" not in result.stderr
