"""The training job spec: every option of a run, written to `<run>/spec.json` and read back on resume.

The Slicer module writes a spec file and starts `ragan train --spec <run>/spec.json`; the command line builds the
same object from its flags. Paths inside a spec file may be relative to the file's folder.
"""

import dataclasses
import json
import math
from pathlib import Path

from RaGANLib.errors import BadInput, read_json
from RaGANLib.runfolder import write_json_atomic

# 2: `width` (None: by device); a version-1 spec, written before it, had the CPU width. 3: `mode` defaults to
# conditional; a spec of version 1 or 2 without `mode`, or one without `version` (read as 2), means joint, the default
# when it was written, so a run made then resumes in its own mode.
SPEC_VERSION = 3
OLD_MODE = "joint"  # the mode a spec.json before version 3 means when it does not name one
AXES = ("axial", "coronal", "sagittal")
INTENSITY_PRESETS = ("auto", "ct", "mr", "xray")
SLICE_CHOICES = ("labelled", "all")
ARCHITECTURES = ("dcgan", "residual")  # see RaGANLib/networks.py
MODES = ("joint", "conditional")  # the generator invents image and label together, or paints an image for a label
MAX_SEED = 2**32 - 1  # Keras seeds numpy's legacy generator, which takes 0 .. 2**32 - 1
# Network channels at full resolution by slice size on a CPU (about 1 M parameters per network at 128 px: a 2-core
# laptop trains 64 px slices at about 80 images/s). A GPU gets GPU_WIDTH_FACTOR times as many (3.5-4.6 M parameters per
# network at 128 px, 4x the compute): convolutions of 16 channels on a batch of 16 leave a GPU mostly waiting on
# kernel launches, so the wider networks cost little time there (chosen, not yet measured on a GPU).
CPU_WIDTH = {64: 16, 128: 16, 256: 12, 512: 8}
GPU_WIDTH_FACTOR = 2
WIDTH_RANGE = (4, 128)


@dataclasses.dataclass
class TrainSpec:
    """All options of one training run, with their defaults."""

    # Inputs: exactly one of dataset / pairs_file / pairs.
    dataset: str | None = None  # nnU-Net v2 raw dataset folder (imagesTr/, labelsTr/, dataset.json)
    pairs_file: str | None = None  # CSV (image,label[,case]) or JSON list of {"image", "label"[, "case"]}
    pairs: list[list[str]] = dataclasses.field(default_factory=list)  # [[image, label], ...]
    label_names: dict[str, str] = dataclasses.field(default_factory=dict)  # original label value -> name
    label_colors: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # value -> [r, g, b] in 0..1

    # Preparation.
    size: int = 128  # training slice size in pixels (square), 64..512
    axis: str = "axial"  # slicing axis: axial, coronal or sagittal
    spacing: float | None = None  # in-plane pixel spacing in mm; None: the largest field of view fits `size`
    intensity: str = "auto"  # normalisation preset: auto, ct (HU window), mr or xray (robust percentiles)
    ct_window: list[float] = dataclasses.field(default_factory=lambda: [-1000.0, 1000.0])  # HU kept for CT
    slices: str = "labelled"  # which slices train: those with label, or all
    empty_ratio: float = 0.0  # with slices=labelled: add this many empty slices per labelled one

    # Model and training.
    arch: str = "residual"  # network family: residual, or the dcgan baseline (RaGANLib/networks.py)
    width: int | None = None  # channels at full resolution (doubling per halving); None: by device (default_width)
    #                           when the run starts or resumes
    mode: str = "conditional"  # conditional: an image for a given label (+ noise); joint: image and label from noise
    steps: int = 2000  # total optimiser steps of the run
    batch: int = 16  # global batch size (split over replicas)
    lr: float = 0.0002  # Adam learning rate of both networks
    r1_gamma: float = 1.0  # weight of the R1 gradient penalty on real pairs
    ema_halflife: float = 200.0  # steps after which an old generator weight counts half in the EMA copy
    augment: float | str = 0.5  # probability of each augmentation (0 disables), or "ada": adapted while training
    class_balance: float = 0.5  # share of draws that pick a class first, then a slice holding it (0: uniform slices)
    seed: int = 0  # seeds data order, initial weights and previews

    # Run control.
    checkpoint_every: int = 250  # steps between checkpoints (a killed run loses at most this many)
    preview_every: int = 250  # steps between preview grids
    log_every: int = 10  # steps between progress events and TensorBoard scalars
    score_every: int = 250  # steps between scores of the EMA generator; the best becomes model/ (0: the last step)
    keep_checkpoints: int = 3  # newest checkpoints kept
    multi_gpu: bool = False  # MirroredStrategy over all local GPUs (TF_CONFIG set: MultiWorkerMirroredStrategy)
    mixed_precision: bool = False  # float16 compute on GPUs
    xla: bool = False  # XLA-compile the train step (GPUs)

    version: int = SPEC_VERSION

    # Options that change the data or the networks: a run can only resume with the same values.
    IDENTITY = (
        "dataset",
        "pairs_file",
        "pairs",
        "label_names",
        "size",
        "axis",
        "spacing",
        "intensity",
        "ct_window",
        "slices",
        "empty_ratio",
        "arch",
        "width",
        "mode",
        "batch",
        "seed",
    )

    def validate(self, where: str, flags: dict[str, str] | None = None) -> None:
        """Refuse option values that cannot work, naming `where` they came from and the option (by its command-line
        flag where `flags` maps option names to flags). NaN and infinity are refused everywhere."""
        sources = sum(bool(x) for x in (self.dataset, self.pairs_file, self.pairs))
        if sources != 1:
            raise BadInput(f"{where}: give exactly one input: a dataset folder, a pairs file, or image/label pairs")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            problem = option_problem(field.name, value)
            if problem:
                name = (flags or {}).get(field.name, field.name)
                raise BadInput(f"{where}: {name} {problem}, got {json.dumps(value, default=str)}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def from_json(cls, data: dict, where: str, base: Path | None = None) -> "TrainSpec":
        """Build a spec from parsed JSON; relative input paths are taken from `base`."""
        if not isinstance(data, dict):
            raise BadInput(f"{where}: a spec must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInput(f"{where}: unknown option(s) {', '.join(unknown)}")
        if data.get("version", 2) in (1, 2) and "mode" not in data:
            data = {**data, "mode": OLD_MODE}
        try:
            spec = cls(**data)
        except TypeError as error:
            raise BadInput(f"{where}: {error}") from None
        spec.validate(where)
        if spec.version == 1 and spec.width is None:  # written before --width: its networks had the CPU width
            spec.width = default_width(spec.size, gpu=False)
        if base is not None:
            spec.resolve_paths(base)
        return spec

    @classmethod
    def load(cls, path: Path) -> "TrainSpec":
        return cls.from_json(read_json(path, "spec"), f"spec '{path}'", base=Path(path).resolve().parent)

    def resolve_paths(self, base: Path) -> None:
        def absolute(p: str) -> str:
            return str((base / p).resolve()) if p else p

        self.dataset = absolute(self.dataset) if self.dataset else None
        self.pairs_file = absolute(self.pairs_file) if self.pairs_file else None
        self.pairs = [[absolute(image), absolute(label)] for image, label in self.pairs]

    def differences(self, other: "TrainSpec") -> list[str]:
        """Identity options in which `other` differs from this spec."""
        mine, theirs = self.to_json(), other.to_json()
        return [name for name in self.IDENTITY if mine[name] != theirs[name]]


def default_width(size: int, gpu: bool) -> int:
    """The network width a run gets when --width is not given: CPU_WIDTH of the nearest size, more on a GPU."""
    width = CPU_WIDTH[min(CPU_WIDTH, key=lambda s: abs(s - size))]
    return width * GPU_WIDTH_FACTOR if gpu else width


def augment_setting(text: str) -> float | str:
    """The --augment flag's value: a probability when the text reads as a number, else the text (which
    option_problem then accepts only as 'ada')."""
    try:
        return float(text)
    except ValueError:
        return text


def number_problem(value, whole: bool = False, low=None, high=None, above=None) -> str | None:
    """Why `value` is not an acceptable number, or None: a finite (whole) number, low <= value <= high, > above."""
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return "must be a whole number" if whole else "must be a number"
    if not math.isfinite(value):
        return "must be a finite number"
    if above is not None and not value > above:
        return f"must be greater than {above}"
    if low is not None and value < low:
        return f"must be at least {low}"
    if high is not None and value > high:
        return f"must be at most {high}"
    return None


NUMBERS = {  # option -> the rule of number_problem
    "steps": {"whole": True, "low": 1},
    "batch": {"whole": True, "low": 1},
    "lr": {"above": 0},
    "r1_gamma": {"low": 0},
    "ema_halflife": {"above": 0},
    "class_balance": {"low": 0, "high": 1},
    "seed": {"whole": True, "low": 0, "high": MAX_SEED},
    "empty_ratio": {"low": 0},
    "checkpoint_every": {"whole": True, "low": 1},
    "preview_every": {"whole": True, "low": 1},
    "log_every": {"whole": True, "low": 1},
    "score_every": {"whole": True, "low": 0},
    "keep_checkpoints": {"whole": True, "low": 1},
    "version": {"whole": True, "low": 1, "high": SPEC_VERSION},
}
CHOICES = {"axis": AXES, "intensity": INTENSITY_PRESETS, "slices": SLICE_CHOICES, "arch": ARCHITECTURES, "mode": MODES}


def option_problem(name: str, value) -> str | None:
    """Why `value` cannot be the training option `name`, or None when it can."""
    if name in NUMBERS:
        return number_problem(value, **NUMBERS[name])
    if name in CHOICES:
        return (
            None if isinstance(value, str) and value in CHOICES[name] else f"must be one of {', '.join(CHOICES[name])}"
        )
    if name == "size":
        if number_problem(value, whole=True) or not (64 <= value <= 512 and value % 16 == 0):
            return "must be a multiple of 16 between 64 and 512"
    elif name == "width":
        low, high = WIDTH_RANGE
        problem = None if value is None else number_problem(value, whole=True, low=low, high=high)
        return problem and f"must be a whole number of channels in {low}..{high}"
    elif name == "spacing":
        return None if value is None else number_problem(value, above=0) and "must be a positive number of mm"
    elif name == "ct_window":
        if (
            not (isinstance(value, list) and len(value) == 2 and not any(number_problem(v) for v in value))
            or not value[0] < value[1]
        ):
            return "must be two finite numbers [low, high] with low < high"
    elif name == "augment":
        if value != "ada" and number_problem(value, low=0, high=1):
            return "must be ada or a probability between 0 and 1"
    elif name in ("dataset", "pairs_file"):
        return None if value is None or isinstance(value, str) else "must be a path"
    elif name == "pairs":
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in value
        ):
            return "must be a list of [image, label] paths"
    elif name == "label_names":
        if not isinstance(value, dict) or not all(
            str(k).isdigit() and isinstance(n, str) and n.strip() for k, n in value.items()
        ):
            return 'must map label values to names, e.g. {"1": "liver"}'
    elif name == "label_colors":
        if not isinstance(value, dict) or not all(
            str(k).isdigit()
            and isinstance(c, list)
            and len(c) == 3
            and not any(number_problem(x, low=0, high=1) for x in c)
            for k, c in value.items()
        ):
            return "must map label values to [r, g, b] colours with each part in 0..1"
    elif name in ("multi_gpu", "mixed_precision", "xla"):
        return None if isinstance(value, bool) else "must be true or false"
    return None
