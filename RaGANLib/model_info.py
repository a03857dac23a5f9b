"""What a model folder's `model.json` must hold: one schema, checked before anything is loaded or sampled.

    info = read_model_info(Path("runs/liver/model"))     # the checked model.json, as a dict

TensorFlow-free: the Slicer module reads model.json with this too. The schema is the one
`model_folder.model_description` writes; every refusal names model.json and the field, with exit code 2.
"""

import json
from pathlib import Path

from RaGANLib.errors import BadInput, read_json
from RaGANLib.spec import AXES, MODES, number_problem, option_problem
from RaGANLib.versions import model_problem, release

# Format 2 added "mode" and, for a conditional model, "labels" (absent: a joint model). A joint model is still written
# as format 1, so that a RaGAN that knows format 1 only keeps using it.
MODEL_FORMAT = 2
JOINT_FORMAT = 1
MODALITIES = ("ct", "mr", "xray")
MAX_LABEL_VALUE = 65535  # synthetic labels are written as 16-bit unsigned integers


def read_model_info(folder: Path) -> dict:
    """The model.json of a model folder, checked against the schema."""
    folder = Path(folder)
    path = folder / "model.json"
    if not path.exists() and folder.is_dir():
        raise BadInput(f"'{folder}' is not a RaGAN model folder (it has no model.json)")
    return check_model_info(read_json(path, "model description"), f"'{path}'")


def check_model_info(data, where: str) -> dict:
    """`data` if it fits the schema; otherwise BadInput naming `where` and the first field that does not."""
    if not isinstance(data, dict):
        raise BadInput(f"{where} must be a JSON object, not {type(data).__name__}")
    model_format = _field(data, "format", where)
    _check_number(where, "format", model_format, whole=True, low=1)
    if model_format > MODEL_FORMAT:
        raise BadInput(f"{where} was made by a newer RaGAN (format {model_format}); update RaGAN to use it")
    generator = _field(data, "generator", where)
    if not isinstance(generator, str) or not _plain_file_name(generator):
        _refuse(where, "generator", generator, "must be a file name inside the model folder")
    _check_number(where, "latent_size", _field(data, "latent_size", where), whole=True, low=1, high=4096)
    mode = model_mode(data)
    if mode not in MODES:
        _refuse(where, "mode", mode, f"must be one of {', '.join(MODES)}")
    if mode == "conditional":
        labels = _field(data, "labels", where)
        if not isinstance(labels, str) or not _plain_file_name(labels):
            _refuse(where, "labels", labels, "must be a file name inside the model folder")
    width = data.get("width")  # absent: a model from before --width
    if option_problem("width", width):
        _refuse(where, "width", width, option_problem("width", width))
    modality = _field(data, "modality", where)
    if modality not in MODALITIES:
        _refuse(where, "modality", modality, f"must be one of {', '.join(MODALITIES)}")
    _check_classes(_field(data, "classes", where), where)
    intensity = _section(data, "intensity", where)
    low, high = _field(intensity, "low", where, "intensity."), _field(intensity, "high", where, "intensity.")
    for key, value in (("low", low), ("high", high)):
        _check_number(where, f"intensity.{key}", value)
    if not low < high:
        _refuse(where, "intensity.high", high, f"must be greater than intensity.low ({low})")
    grid = _section(data, "slice", where)
    size = _field(grid, "size", where, "slice.")
    if option_problem("size", size):
        _refuse(where, "slice.size", size, option_problem("size", size))
    spacing = _field(grid, "spacing", where, "slice.")
    if not isinstance(spacing, list) or len(spacing) != 2 or any(number_problem(s, above=0) for s in spacing):
        _refuse(where, "slice.spacing", spacing, "must be two positive numbers of mm")
    _check_number(where, "slice.thickness", _field(grid, "thickness", where, "slice."), above=0)
    axis = _field(grid, "axis", where, "slice.")
    if axis not in AXES:
        _refuse(where, "slice.axis", axis, f"must be one of {', '.join(AXES)}")
    training = _section(data, "training", where)
    for key, low_limit in (("steps", 0), ("batch", 1), ("cases", 1), ("slices", 1), ("seed", 0)):
        _check_number(where, f"training.{key}", _field(training, key, where, "training."), whole=True, low=low_limit)
    saved_with = data.get("versions", {})
    if not isinstance(saved_with, dict):
        _refuse(where, "versions", saved_with, "must be a JSON object")
    keras = saved_with.get("keras")
    if keras is not None and (not isinstance(keras, str) or not release(keras)):
        _refuse(where, "versions.keras", keras, 'must be a Keras version such as "3.15.1"')
    return data


def check_keras(info: dict, installed: str | None, where: str) -> None:
    """BadInput naming `where` and what to install when the model was saved by a newer Keras than `installed`."""
    problem = model_problem(info.get("versions", {}).get("keras"), installed)
    if problem:
        raise BadInput(f"{where}: field versions.keras: {problem}")


def model_mode(info: dict) -> str:
    """A model's mode: joint (image and label from noise) or conditional (an image for a label); a model.json
    written before modes existed is joint."""
    return info.get("mode", "joint")


def _check_classes(classes, where: str) -> None:
    if not isinstance(classes, list) or len(classes) < 2:
        _refuse(where, "classes", classes, "must list background and at least one class")
    seen_values, seen_names = set(), set()
    for index, entry in enumerate(classes):
        field = f"classes[{index}]"
        if not isinstance(entry, dict):
            _refuse(where, field, entry, 'must be an object with "index", "value", "name" and "color"')
        if _field(entry, "index", where, f"{field}.") != index or not isinstance(entry["index"], int):
            _refuse(where, f"{field}.index", entry["index"], f"must be {index} (classes in index order)")
        value = _field(entry, "value", where, f"{field}.")
        _check_number(where, f"{field}.value", value, whole=True, low=0, high=MAX_LABEL_VALUE)
        if value in seen_values:
            _refuse(where, f"{field}.value", value, "must differ from the other classes' values")
        if (index == 0) != (value == 0):
            _refuse(where, f"{field}.value", value, "must be 0 for the first class (background) only")
        name = _field(entry, "name", where, f"{field}.")
        if not isinstance(name, str) or not name.strip() or name in seen_names:
            _refuse(where, f"{field}.name", name, "must be a name unlike the other classes'")
        color = _field(entry, "color", where, f"{field}.")
        if not isinstance(color, list) or len(color) != 3 or any(number_problem(c, low=0, high=1) for c in color):
            _refuse(where, f"{field}.color", color, "must be [r, g, b] with each part in 0..1")
        seen_values.add(value)
        seen_names.add(name)


def _field(data: dict, key: str, where: str, prefix: str = ""):
    if key not in data:
        raise BadInput(f"{where} has no field {prefix}{key}")
    return data[key]


def _section(data: dict, key: str, where: str) -> dict:
    section = _field(data, key, where)
    if not isinstance(section, dict):
        _refuse(where, key, section, "must be a JSON object")
    return section


def _check_number(where: str, field: str, value, **rule) -> None:
    problem = number_problem(value, **rule)
    if problem:
        _refuse(where, field, value, problem)


def _plain_file_name(name: str) -> bool:
    """A name that stays inside the folder: no folder part, not absolute, not '..', no drive."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\:") and name.strip() == name


def _refuse(where: str, field: str, value, problem: str):
    shown = json.dumps(value, default=str)
    raise BadInput(f"{where}: field {field} {problem}, got {shown if len(shown) <= 80 else shown[:77] + '...'}")
