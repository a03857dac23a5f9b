"""What a model folder's `model.json` holds, as typed, frozen values: one schema, checked before anything is loaded.

    info = read_model_info(Path("runs/liver/model"))     # a checked ModelInfo
    info.grid.size, info.grid.axis, info.intensity.inverse(images), [c.name for c in info.classes]
    write_model_info(folder, info)                        # the one writer (model_folder.export)

TensorFlow-free: the Slicer module reads model.json with this too. `ModelInfo.from_json` checks the schema; every
refusal names model.json and the field, with exit code 2. The slice cache's meta.json (RaGANLib.data.prepare) records
its grid and intensity mapping with the same `SliceGrid` and `Normalisation`. The file format is what `to_json` writes.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from RaGANLib.errors import BadInput, read_json
from RaGANLib.spec import AXES, MODES, number_problem, option_problem
from RaGANLib.training.runfolder import write_json_atomic
from RaGANLib.versions import model_problem, release

# Format 2 added "mode" and, for a conditional model, "labels" (absent: a joint model). A joint model is still written
# as format 1, so that a RaGAN that knows format 1 only keeps using it. Format 3 added "body" (true: the generator's
# last condition class is the body outline, RaGANLib/data/body.py); only such a model is written as format 3.
MODEL_FORMAT = 3
CONDITIONAL_FORMAT = 2
JOINT_FORMAT = 1
MODALITIES = ("ct", "mr", "xray")
MAX_LABEL_VALUE = 65535  # synthetic labels are written as 16-bit unsigned integers
MODEL_JSON = "model.json"
ORIENTATION = "LPS; rows top to bottom, columns left to right as displayed"


@dataclasses.dataclass(frozen=True)
class LabelClass:
    """One class of the labels: its index in the model, the original label value, its name and colour (r, g, b)."""

    index: int
    value: int
    name: str
    color: tuple[float, float, float]

    @classmethod
    def from_json(cls, entry: dict) -> "LabelClass":
        return cls(entry["index"], entry["value"], entry["name"], tuple(entry["color"]))

    def to_json(self) -> dict:
        return {"index": self.index, "value": self.value, "name": self.name, "color": list(self.color)}


@dataclasses.dataclass(frozen=True)
class SliceGrid:
    """The grid of the model's slices: size x size pixels of `spacing` (row, column) mm, `thickness` mm apart, cut
    along `axis`. `shape` is the pixel shape of one sample, the one place a 3D model would differ."""

    size: int
    spacing: tuple[float, float]
    thickness: float
    axis: str

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    @classmethod
    def from_json(cls, grid: dict) -> "SliceGrid":
        """From model.json's "slice" section or the slice cache's meta.json (which holds the same four fields)."""
        return cls(grid["size"], tuple(grid["spacing"]), grid["thickness"], grid["axis"])

    def to_json(self) -> dict:
        return {"size": self.size, "spacing": list(self.spacing), "thickness": self.thickness, "axis": self.axis}


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """Maps source intensities to [-1, 1] (clipped) and back; `per_case`: each case was mapped by its own range
    (MR, X-ray), and low/high are the mean of those ranges."""

    low: float
    high: float
    per_case: bool = False

    FORWARD = "clip((x - low) / (high - low) * 2 - 1, -1, 1)"
    INVERSE = "(y + 1) / 2 * (high - low) + low"

    def forward(self, values: np.ndarray) -> np.ndarray:
        return np.clip((values - self.low) / (self.high - self.low) * 2 - 1, -1, 1)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) + 1) / 2 * (self.high - self.low) + self.low

    @classmethod
    def from_json(cls, intensity: dict) -> "Normalisation":
        return cls(intensity["low"], intensity["high"], intensity.get("per_case", False))

    def to_json(self) -> dict:
        return {"low": self.low, "high": self.high, "per_case": self.per_case}


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What the model was trained on and how long: counts and content hashes only, no paths or names."""

    cases: int
    slices: int
    class_pixel_fraction: tuple[float, ...]
    content_sha256: tuple[str, ...]
    steps: int
    batch: int
    seed: int

    @classmethod
    def from_json(cls, training: dict) -> "TrainingData":
        return cls(
            training["cases"],
            training["slices"],
            tuple(training.get("class_pixel_fraction", ())),
            tuple(training.get("content_sha256", ())),
            training["steps"],
            training["batch"],
            training["seed"],
        )

    def to_json(self) -> dict:
        return {
            "cases": self.cases,
            "slices": self.slices,
            "class_pixel_fraction": list(self.class_pixel_fraction),
            "content_sha256": list(self.content_sha256),
            "steps": self.steps,
            "batch": self.batch,
            "seed": self.seed,
        }


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A model folder's model.json: how to run the generator and how to turn what it makes into volumes."""

    classes: tuple[LabelClass, ...]
    modality: str
    intensity: Normalisation
    grid: SliceGrid
    training: TrainingData
    versions: dict  # package -> version that saved the model ("ragan", "tensorflow", "keras", "python")
    mode: str = "joint"  # joint (image and label from noise) or conditional (an image for a label)
    width: int | None = None  # None: a model from before --width
    arch: str | None = None
    latent_size: int = 128
    generator: str = "generator.keras"
    labels: str | None = None  # conditional models: the file of training label slices
    selection: dict | None = None  # how the exported step was chosen (RaGANLib.training.best_model)
    body: bool = False  # conditional models: the body outline is one more condition class, after `classes`

    @property
    def conditional(self) -> bool:
        return self.mode == "conditional"

    @property
    def format(self) -> int:
        """The lowest model.json format that holds this model (see MODEL_FORMAT)."""
        if self.body:
            return MODEL_FORMAT
        return CONDITIONAL_FORMAT if self.conditional else JOINT_FORMAT

    @property
    def condition_classes(self) -> int:
        """The classes of the generator's label input: the label classes, and the body outline with `body`."""
        return len(self.classes) + self.body

    @property
    def units(self) -> str:
        return "HU" if self.modality == "ct" else "source"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def colors(self) -> list[tuple[float, float, float]]:
        return [c.color for c in self.classes]

    @classmethod
    def from_json(cls, data, where: str) -> "ModelInfo":
        """The model described by `data` (parsed model.json); BadInput naming `where` and the first field that does
        not fit the schema."""
        check_model_info(data, where)
        return cls(
            classes=tuple(LabelClass.from_json(c) for c in data["classes"]),
            modality=data["modality"],
            intensity=Normalisation.from_json(data["intensity"]),
            grid=SliceGrid.from_json(data["slice"]),
            training=TrainingData.from_json(data["training"]),
            versions=dict(data.get("versions", {})),
            mode=data.get("mode", "joint"),  # a model.json written before modes existed is joint
            width=data.get("width"),
            arch=data.get("arch"),
            latent_size=data["latent_size"],
            generator=data["generator"],
            labels=data.get("labels"),
            selection=data.get("selection"),
            body=data.get("body", False),
        )

    def to_json(self) -> dict:
        """model.json's content; fields a model made before they existed lacks (arch, width, selection) are left out
        while unknown."""
        optional = {"arch": self.arch, "width": self.width}
        return {
            "format": self.format,
            "generator": self.generator,
            "latent_size": self.latent_size,
            **{key: value for key, value in optional.items() if value is not None},
            "mode": self.mode,
            **({"labels": self.labels} if self.conditional else {}),
            **({"body": True} if self.body else {}),
            "classes": [c.to_json() for c in self.classes],
            "modality": self.modality,
            "intensity": {
                "forward": Normalisation.FORWARD,
                "inverse": Normalisation.INVERSE,
                **self.intensity.to_json(),
                "units": self.units,
            },
            "slice": {**self.grid.to_json(), "orientation": ORIENTATION},
            "training": self.training.to_json(),
            "versions": dict(self.versions),
            **({"selection": self.selection} if self.selection is not None else {}),
        }


def read_model_info(folder: Path) -> ModelInfo:
    """The model.json of a model folder, checked against the schema."""
    folder = Path(folder)
    path = folder / MODEL_JSON
    if not path.exists() and folder.is_dir():
        raise BadInput(f"'{folder}' is not a RaGAN model folder (it has no {MODEL_JSON})")
    return ModelInfo.from_json(read_json(path, "model description"), f"'{path}'")


def write_model_info(folder: Path, info: ModelInfo) -> Path:
    """Write `info` as `folder`/model.json (whole or not at all), checked first, so that what RaGAN writes it also
    reads; returns the path."""
    path = Path(folder) / MODEL_JSON
    data = info.to_json()
    check_model_info(data, f"'{path}'")
    write_json_atomic(path, data)
    return path


def check_model_info(data, where: str) -> None:
    """BadInput naming `where` and the first field of `data` (parsed model.json) that does not fit the schema."""
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
    mode = data.get("mode", "joint")
    if mode not in MODES:
        _refuse(where, "mode", mode, f"must be one of {', '.join(MODES)}")
    if mode == "conditional":
        labels = _field(data, "labels", where)
        if not isinstance(labels, str) or not _plain_file_name(labels):
            _refuse(where, "labels", labels, "must be a file name inside the model folder")
    body = data.get("body", False)
    if body not in (True, False) or (body and mode != "conditional"):
        _refuse(where, "body", body, "must be true (a conditional model only) or false")
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
    if not isinstance(intensity.get("per_case", False), bool):
        _refuse(where, "intensity.per_case", intensity["per_case"], "must be true or false")
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
    fractions = training.get("class_pixel_fraction", [])  # absent in hand-written model.json files
    if not isinstance(fractions, list) or (fractions and len(fractions) != len(data["classes"])):
        count = len(data["classes"])
        _refuse(
            where, "training.class_pixel_fraction", fractions, f"must hold one share for each of the {count} classes"
        )
    for index, fraction in enumerate(fractions):
        _check_number(where, f"training.class_pixel_fraction[{index}]", fraction, low=0, high=1)
    hashes = training.get("content_sha256", [])
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        _refuse(where, "training.content_sha256", hashes, "must list SHA-256 hex digests")
    saved_with = data.get("versions", {})
    if not isinstance(saved_with, dict):
        _refuse(where, "versions", saved_with, "must be a JSON object")
    keras = saved_with.get("keras")
    if keras is not None and (not isinstance(keras, str) or not release(keras)):
        _refuse(where, "versions.keras", keras, 'must be a Keras version such as "3.15.1"')


def check_keras(info: ModelInfo, installed: str | None, where: str) -> None:
    """BadInput naming `where` and what to install when the model was saved by a newer Keras than `installed`."""
    problem = model_problem(info.versions.get("keras"), installed)
    if problem:
        raise BadInput(f"{where}: field versions.keras: {problem}")


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
