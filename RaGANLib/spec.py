"""The training job spec: every option of a run, written to `<run>/spec.json` and read back on resume.

The Slicer module writes a spec file and starts `ragan train --spec <run>/spec.json`; the command line builds the
same object from its flags. Paths inside a spec file may be relative to the file's folder.
"""

import dataclasses
import json
from pathlib import Path

from RaGANLib.errors import BadInput
from RaGANLib.runfolder import write_json_atomic

SPEC_VERSION = 1
AXES = ("axial", "coronal", "sagittal")
INTENSITY_PRESETS = ("auto", "ct", "mr", "xray")
SLICE_CHOICES = ("labelled", "all")
ARCHITECTURES = ("dcgan", "residual")  # see RaGANLib/networks.py


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
    steps: int = 2000  # total optimiser steps of the run
    batch: int = 16  # global batch size (split over replicas)
    lr: float = 0.0002  # Adam learning rate of both networks
    r1_gamma: float = 1.0  # weight of the R1 gradient penalty on real pairs
    ema_halflife: float = 200.0  # steps after which an old generator weight counts half in the EMA copy
    augment: float = 0.5  # probability of each differentiable augmentation (0 disables)
    seed: int = 0  # seeds data order, initial weights and previews

    # Run control.
    checkpoint_every: int = 250  # steps between checkpoints (a killed run loses at most this many)
    preview_every: int = 250  # steps between preview grids
    log_every: int = 10  # steps between progress events and TensorBoard scalars
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
        "batch",
        "seed",
    )

    def validate(self, where: str) -> None:
        """Refuse option values that cannot work, naming `where` they came from."""
        sources = sum(bool(x) for x in (self.dataset, self.pairs_file, self.pairs))
        if sources != 1:
            raise BadInput(f"{where}: give exactly one input: a dataset folder, a pairs file, or image/label pairs")
        checks = [
            (64 <= self.size <= 512 and self.size % 16 == 0, "size must be a multiple of 16 between 64 and 512"),
            (self.spacing is None or self.spacing > 0, "spacing must be a positive number of mm"),
            (self.axis in AXES, f"axis must be one of {', '.join(AXES)}"),
            (self.intensity in INTENSITY_PRESETS, f"intensity must be one of {', '.join(INTENSITY_PRESETS)}"),
            (len(self.ct_window) == 2 and self.ct_window[0] < self.ct_window[1], "ct_window must be [low, high]"),
            (self.slices in SLICE_CHOICES, f"slices must be one of {', '.join(SLICE_CHOICES)}"),
            (self.empty_ratio >= 0, "empty_ratio must be >= 0"),
            (self.arch in ARCHITECTURES, f"arch must be one of {', '.join(ARCHITECTURES)}"),
            (self.steps >= 1 and self.batch >= 1, "steps and batch must be positive"),
            (self.checkpoint_every >= 1 and self.preview_every >= 1 and self.log_every >= 1, "intervals must be >= 1"),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1"),
            (all(len(p) == 2 for p in self.pairs), "each pair must be [image, label]"),
        ]
        for ok, message in checks:
            if not ok:
                raise BadInput(f"{where}: {message}")

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
        if data.get("version", SPEC_VERSION) > SPEC_VERSION:
            raise BadInput(f"{where}: spec version {data['version']} is newer than this RaGAN understands")
        try:
            spec = cls(**data)
        except TypeError as error:
            raise BadInput(f"{where}: {error}") from None
        if base is not None:
            spec.resolve_paths(base)
        spec.validate(where)
        return spec

    @classmethod
    def load(cls, path: Path) -> "TrainSpec":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise BadInput(f"spec '{path}' does not exist") from None
        except (OSError, ValueError) as error:
            raise BadInput(f"spec '{path}' cannot be read: {error}") from None
        return cls.from_json(data, f"spec '{path}'", base=Path(path).resolve().parent)

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
