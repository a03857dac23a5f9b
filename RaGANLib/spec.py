"""The training job spec: every option of a run, written to `<run>/spec.json` and read back on resume.

The Slicer module writes a spec file and starts `ragan train --spec <run>/spec.json`; the command line builds the
same object from its flags. Paths inside a spec file may be relative to the file's folder.

TrainSpec is the one table of training options: each field's metadata (see `option`) holds its help text, its valid
range or choices, its `ragan train` flag, whether the Slicer panel shows it and what each preset sets it to. The
validation below, the flags and help of `ragan train` (cli.py), the presets (`ragan train --preset` and the panel's
preset box) and the Slicer parameter node's choices and ranges (RaGANModuleLib/training_options.py) are all read from
it, so an option is declared once.
"""

import dataclasses
import json
import math
from pathlib import Path

from RaGANLib.errors import BadInput, read_json
from RaGANLib.training.runfolder import write_json_atomic

# 2: `width` (None: by device); a version-1 spec, written before it, had the CPU width. 3: `mode` defaults to
# conditional, and `smooth_labels`. 4: `border_padding` reflect, `pixel_noise` on and `class_intensity` 1 by default.
# 5: `seg_consistency` 1 by default. A spec written before a version (without version: read as 2) that does not name
# the options whose default changed then means the defaults it was written under (OLD_DEFAULTS), so a run made then
# resumes as it trained.
SPEC_VERSION = 5
OLD_DEFAULTS = {  # version -> the values of the options whose default changed with it, for specs written before
    3: {"mode": "joint", "smooth_labels": False},
    4: {"border_padding": "zero", "pixel_noise": False, "class_intensity": 0.0},
    5: {"seg_consistency": 0.0},
}
AXES = ("axial", "coronal", "sagittal")
INTENSITY_PRESETS = ("auto", "ct", "mr", "xray")
SLICE_CHOICES = ("labelled", "all")
ARCHITECTURES = ("dcgan", "residual")  # see RaGANLib/model/networks.py
BORDER_PADDINGS = ("zero", "reflect")  # the generator's convolutions at the slice border (RaGANLib/model/networks.py)
MODES = ("conditional", "joint")  # the generator paints an image for a label, or invents image and label together
MAX_SEED = 2**32 - 1  # Keras seeds numpy's legacy generator, which takes 0 .. 2**32 - 1
# Network channels at full resolution by slice size on a CPU (about 1 M parameters per network at 128 px: a 2-core
# laptop trains 64 px slices at about 80 images/s). A GPU gets GPU_WIDTH_FACTOR times as many (3.5-4.6 M parameters per
# network at 128 px, 4x the compute): convolutions of 16 channels on a batch of 16 leave a GPU mostly waiting on
# kernel launches, so the wider networks cost little time there (chosen, not yet measured on a GPU).
CPU_WIDTH = {64: 16, 128: 16, 256: 12, 512: 8}
GPU_WIDTH_FACTOR = 2
WIDTH_RANGE = (4, 128)
# The presets: size, steps and batch by name ("quick look" is the panel's default); the other options stay as given.
PRESET_NAMES = ("quick look", "standard", "high quality")


def augment_setting(text: str) -> float | str:
    """The --augment flag's value: a probability when the text reads as a number, else the text (which
    option_problem then accepts only as 'ada')."""
    try:
        return float(text)
    except ValueError:
        return text


def option(
    default,
    help: str,
    *,
    choices: tuple | None = None,
    flag: bool = True,
    default_text: str | None = None,
    panel: bool | tuple = False,
    presets: tuple | None = None,
    parse=None,
    **rule,
):
    """A TrainSpec field and what is known about it.

    help: what the option does, for `ragan train --help` (which adds the choices or range and the default).
    choices: the values it takes. rule: number_problem's rule (whole, low, high, above, multiple) for a number.
    flag: `ragan train` has a `--name-with-dashes` flag of the field's kind for it: a value, or for a true/false
    option (a bool default) a switch without one, with its `--no-...` opposite (False: no flag, or one of its own
    shape written in cli.py).
    default_text: the default in words where the value alone says too little.
    panel: the Slicer panel shows it (a tuple: offered as these texts, read as the flag reads them).
    presets: the values the presets of PRESET_NAMES set, in that order.
    parse: how the flag's (and the panel's) text becomes a value; default: int for a whole number, float for another
    number, else the text.
    """
    metadata = {
        "help": help,
        "choices": choices,
        "rule": rule or None,
        "flag": flag,
        "default_text": default_text,
        "panel": panel,
        "presets": dict(zip(PRESET_NAMES, presets, strict=True)) if presets else {},
        "parse": parse or ((int if rule.get("whole") else float) if rule else str),
    }
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainSpec:
    """All options of one training run, with their defaults, ranges and help."""

    # Inputs: exactly one of dataset / pairs_file / pairs.
    dataset: str | None = option(None, "nnU-Net v2 raw dataset folder (imagesTr/, labelsTr/, dataset.json)", flag=False)
    pairs_file: str | None = option(None, "CSV (image,label[,case]) or JSON list of pairs", flag=False)
    pairs: list[list[str]] = option([], "[[image, label], ...]", flag=False)
    label_names: dict[str, str] = option({}, "name a label value", flag=False)  # original value -> name
    label_colors: dict[str, list[float]] = option({}, "label value -> [r, g, b] in 0..1", flag=False)

    # Preparation.
    size: int = option(
        128,
        "training slice size in pixels",
        whole=True,
        low=64,
        high=512,
        multiple=16,
        panel=True,
        presets=(64, 128, 256),
    )
    axis: str = option("axial", "slicing axis", choices=AXES, panel=True)
    spacing: float | None = option(
        None, "in-plane pixel spacing in mm", above=0, default_text="the largest case fits --size"
    )
    intensity: str = option(
        "auto",
        "intensity normalisation: a CT HU window (ct), or robust percentiles",
        choices=INTENSITY_PRESETS,
        panel=True,
    )
    ct_window: list[float] = option([-1000.0, 1000.0], "HU range kept for CT", flag=False)
    slices: str = option("labelled", "which slices train: those with label, or all", choices=SLICE_CHOICES, panel=True)
    empty_ratio: float = option(0.0, "with --slices labelled: empty slices added per labelled one", low=0)

    # Model and training.
    arch: str = option("residual", "network family, see RaGANLib/model/networks.py", choices=ARCHITECTURES)
    width: int | None = option(
        None,
        "network channels at full resolution, doubling per halving",
        whole=True,
        low=WIDTH_RANGE[0],
        high=WIDTH_RANGE[1],
        default_text=f"by device: 16 on a CPU up to 128 px, {GPU_WIDTH_FACTOR}x on a GPU",
    )  # None: by device (default_width) when the run starts or resumes
    mode: str = option(
        "conditional",
        "conditional: an image for a given label (+ noise); joint: image and label from noise",
        choices=MODES,
        panel=True,
    )
    smooth_labels: bool = option(
        True,
        "conditional: modulate from the label map smoothed over 3x3 pixels (RaGANLib/model/networks.py)",
        flag=False,
    )
    border_padding: str = option(
        "reflect",
        "conditional: how the generator's 3x3 convolutions pad the slice border: zeros, or the mirrored pixels inside "
        "it",
        choices=BORDER_PADDINGS,
    )
    pixel_noise: bool = option(
        True, "conditional: the generator adds per-pixel noise of learned strength at every resolution"
    )
    class_intensity: float = option(
        1.0,
        "conditional: weight of a generator loss that matches each class's mean and standard deviation of "
        "intensity in the synthetic batch to the real batch's; 0: none",
        low=0,
    )
    seg_consistency: float = option(
        1.0,
        "weight of a generator loss from a small segmentation network trained alongside on the real pairs: it "
        "segments each synthetic image, scored against that image's label, so the image shows each class where the "
        "label puts it; 0: none (RaGANLib/training/trainer.py)",
        low=0,
        high=10,
        panel=True,
    )
    body: bool = option(
        False,
        "conditional: also give the generator the body outline of each training slice (tissue brighter than the air "
        "around it) as a condition class of its own, so it paints anatomy inside a real outline; the written labels "
        "never hold it (RaGANLib/data/body.py)",
    )
    steps: int = option(2000, "total training steps", whole=True, low=1, panel=True, presets=(600, 4000, 20000))
    batch: int = option(16, "batch size, split over the GPUs", whole=True, low=1, panel=True, presets=(8, 16, 16))
    lr: float = option(0.0002, "Adam learning rate of both networks", above=0)
    r1_gamma: float = option(1.0, "weight of the R1 gradient penalty on real pairs", low=0)
    ema_halflife: float = option(
        200.0, "steps after which an old generator weight counts half in the EMA copy", above=0, flag=False
    )
    augment: float | str = option(
        0.5,
        "probability of each augmentation, 0: none; or ada: adapted while training",
        default_text="0.5",
        panel=("0.5", "ada", "0.25", "0"),
        parse=augment_setting,
    )
    class_balance: float = option(
        0.5,
        "share of training draws that pick a class, then a slice holding it, so rare classes are in the batches; "
        "0 draws slices uniformly",
        low=0,
        high=1,
    )
    seed: int = option(
        0, "random seed of data order, initial weights and previews", whole=True, low=0, high=MAX_SEED, panel=True
    )

    # Run control.
    checkpoint_every: int = option(
        250, "steps between checkpoints; a killed run loses at most this many", whole=True, low=1
    )
    preview_every: int = option(250, "steps between previews", whole=True, low=1)
    log_every: int = option(10, "steps between progress reports and TensorBoard scalars", whole=True, low=1)
    score_every: int = option(
        0,
        "steps between quality scores of the generator; the best-scoring step becomes the model; 0: no scores, the "
        "model is the last step (the own-feature score can prefer blurrier steps, see README)",
        whole=True,
        low=0,
    )
    keep_checkpoints: int = option(3, "newest checkpoints kept", whole=True, low=1, flag=False)
    multi_gpu: bool = option(False, "use all local GPUs (TF_CONFIG set: all hosts' GPUs)")
    mixed_precision: bool = option(False, "float16 compute on GPUs")
    xla: bool = option(False, "XLA-compile the train step")

    version: int = option(SPEC_VERSION, "the spec file's format", whole=True, low=1, high=SPEC_VERSION, flag=False)

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
        "smooth_labels",
        "border_padding",
        "pixel_noise",
        "body",
        "seg_consistency",
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
        if self.body and self.mode != "conditional":
            name = (flags or {}).get("body", "body")
            raise BadInput(f"{where}: {name} needs --mode conditional (a joint generator draws its own labels)")

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
        written = data.get("version", 2)  # without a version: 2
        for version, values in OLD_DEFAULTS.items():
            if type(written) is int and written < version:  # a version not a whole number is refused below
                data = {**values, **data}
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


def number_problem(value, whole: bool = False, low=None, high=None, above=None, multiple=None) -> str | None:
    """Why `value` is not an acceptable number, or None: a finite (whole) number, low <= value <= high, > above, a
    multiple of `multiple`."""
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
    if multiple is not None and value % multiple:
        return f"must be a multiple of {multiple}"
    return None


OPTIONS = {field.name: field for field in dataclasses.fields(TrainSpec)}  # the option table, by name
PRESETS = {
    name: {o: f.metadata["presets"][name] for o, f in OPTIONS.items() if f.metadata["presets"]} for name in PRESET_NAMES
}


def flag_of(name: str) -> str:
    """The `ragan train` flag of an option: `--r1-gamma` for r1_gamma."""
    return "--" + name.replace("_", "-")


def parse_option(name: str, text: str):
    """An option's value from the text of its flag or of the panel; text that does not read as one stays text, for
    option_problem to refuse."""
    try:
        return OPTIONS[name].metadata["parse"](text) if name in OPTIONS else text
    except ValueError:
        return text


def describe_option(name: str) -> str:
    """An option's help with its choices or range and its default, as `ragan train --help` shows it."""
    field = OPTIONS[name]
    meta, rule = field.metadata, field.metadata["rule"] or {}
    if meta["choices"]:
        limits = f"one of {', '.join(meta['choices'])}"
    elif "low" in rule and "high" in rule:
        limits = f"{rule['low']}..{rule['high']}"
    elif "low" in rule:
        limits = f"at least {rule['low']}"
    elif "above" in rule:
        limits = f"above {rule['above']}"
    else:
        limits = None
    if rule.get("multiple"):
        limits += f", a multiple of {rule['multiple']}"
    default = f"default {meta['default_text'] or field.default}"
    return f"{meta['help']} ({'; '.join(filter(None, (limits, default)))})"


def option_problem(name: str, value) -> str | None:
    """Why `value` cannot be the training option `name`, or None when it can."""
    field = OPTIONS.get(name)
    meta = field.metadata if field else {}
    if meta.get("rule"):
        if value is None and field.default is None:  # an option whose default is "decided later" (width, spacing)
            return None
        return number_problem(value, **meta["rule"])
    if meta.get("choices"):
        choices = meta["choices"]
        return None if isinstance(value, str) and value in choices else f"must be one of {', '.join(choices)}"
    if name == "ct_window":
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
    elif field is not None and isinstance(field.default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    return None
