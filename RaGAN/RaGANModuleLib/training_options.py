"""The parameter node's values: the panel's training options, read from RaGANLib's option table (TrainSpec's field
metadata: choices, ranges and defaults as the spec declares them), the panel's own settings (PANEL_SETTINGS), the
presets, and the one mapping from the parameter node back to spec options. Adding an option to the panel:
`panel=True` on its TrainSpec field and a widget in RaGAN.ui bound to it by SlicerParameterName.

    @parameterNodeWrapper
    @with_panel_values(Choice, WithinRange)
    class RaGANParameterNode: ...                      # declares the node fields only

    write_spec(run, exported, spec_options(parameterNode))
"""

from pathlib import Path
from typing import Annotated

from RaGANModuleLib.locations import default_output_folder, import_ragan_lib

import_ragan_lib()
from RaGANLib.results.layouts import MAX_ADD_RARE  # noqa: E402 (RaGANLib is on sys.path now)
from RaGANLib.spec import OPTIONS, PRESET_NAMES, PRESETS  # noqa: E402

SPIN_BOX_MAX = 2**31 - 1  # a Qt spin box holds a C int: larger values the trainer accepts stay for the command line
DEFAULT_PRESET = PRESET_NAMES[0]  # the panel starts with the quick look
PANEL_OPTIONS = [name for name, field in OPTIONS.items() if field.metadata["panel"]]  # parameter name == option name
OUTPUT_FOLDER = default_output_folder()

# The panel's settings beside the training options: name -> (type, default, the choices or (low, high) range or None).
PANEL_SETTINGS = {
    "preset": (str, DEFAULT_PRESET, list(PRESETS)),
    "outputFolder": (Path, OUTPUT_FOLDER, None),
    "device": (str, "auto", ["auto", "cpu"]),
    "modelFolder": (Path, OUTPUT_FOLDER, None),  # set to the run's model/ when training ends
    "count": (int, 16, (1, 100000)),
    "generateSeed": (int, 0, (0, 999999)),
    "addRare": (int, 0, (0, MAX_ADD_RARE)),  # `generate --add-rare`: extra lesions / thin structures per slice
    "exportFolder": (Path, OUTPUT_FOLDER / "nnUNet_raw" / "Dataset501_RaGAN", None),
    "exportReal": (bool, True, None),
    "exportSynthetic": (bool, True, None),
}


def panel_choices(name: str) -> list[str] | None:
    """The texts the panel offers for an option with choices, or None for a number."""
    shown = OPTIONS[name].metadata["panel"]
    if isinstance(shown, tuple):
        return list(shown)
    choices = OPTIONS[name].metadata["choices"]
    return list(choices) if choices else None


def panel_range(name: str) -> tuple:
    """The spin box range of a number option: the spec's, cut to what a spin box holds (an exclusive lower bound, as
    lr's "above 0", is the spin box's lowest value; the spec refuses it when the run's spec is written)."""
    rule = OPTIONS[name].metadata["rule"]
    kind = int if rule.get("whole") else float
    low = rule.get("low", rule.get("above", 0))
    return kind(low), kind(min(rule.get("high", SPIN_BOX_MAX), SPIN_BOX_MAX))


def panel_annotation(name: str, choice, within_range):
    """The parameter node's type of a training option: text among its choices, a number within its range, or a
    switch. `choice` and `within_range` are Slicer's parameterNodeWrapper Choice and WithinRange."""
    choices = panel_choices(name)
    if choices is not None:
        return Annotated[str, choice(choices)]
    rule = OPTIONS[name].metadata["rule"]
    if rule:
        return Annotated[int if rule.get("whole") else float, within_range(*panel_range(name))]
    if isinstance(OPTIONS[name].default, bool):
        return bool
    raise TypeError(f"the panel has no widget for the option {name}")


def panel_default(name: str):
    """What the panel starts with: the default preset's value, else the spec's default (as the panel's text)."""
    value = PRESETS[DEFAULT_PRESET].get(name, OPTIONS[name].default)
    return str(value) if isinstance(OPTIONS[name].metadata["panel"], tuple) else value


def panel_values(choice, within_range) -> dict[str, tuple]:
    """The parameter node's value fields, name -> (type, default): the panel's settings, then its training options.
    `choice` and `within_range` are Slicer's parameterNodeWrapper Choice and WithinRange (passed in: this package runs
    without Slicer's GUI classes)."""
    values = {}
    for name, (kind, default, limits) in PANEL_SETTINGS.items():
        if isinstance(limits, list):
            kind = Annotated[kind, choice(limits)]
        elif limits:
            kind = Annotated[kind, within_range(*limits)]
        values[name] = (kind, default)
    return values | {
        name: (panel_annotation(name, choice, within_range), panel_default(name)) for name in PANEL_OPTIONS
    }


def with_panel_values(choice, within_range):
    """A class decorator that adds `panel_values` to a parameter node class as annotated fields with defaults."""

    def add(cls):
        for name, (kind, default) in panel_values(choice, within_range).items():
            cls.__annotations__[name] = kind
            setattr(cls, name, default)
        return cls

    return add


def spec_options(parameters) -> dict:
    """The training options the panel shows, by option name, from a parameter node (or any object with the options as
    attributes); write_spec reads an option given as text (augment) as its `ragan train` flag reads it."""
    return {name: getattr(parameters, name) for name in PANEL_OPTIONS}


def apply_preset(parameters, name: str) -> None:
    """Set the options the preset `name` sets on the parameter node (the others stay as the user left them); a name
    that is not a preset sets nothing."""
    for option, value in PRESETS.get(name, {}).items():
        setattr(parameters, option, value)
