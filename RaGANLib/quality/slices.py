"""The slices an evaluation compares: real training, held-out real and synthetic, on one grid and one scale.

Real sets come in any form `ragan train` reads (an nnU-Net folder, a CSV/JSON pairs file, or a run's spec.json with
its inputs, pairs included) and are prepared the way training prepares them: labelled slices, resampled to the
model's pixel spacing and size, intensities mapped to [-1, 1] with the model's mapping. Synthetic slices come
straight from a model folder (sampled in that same space), or from synthetic cases in any input form. Every slice
keeps the number of its case: splits and Dice are by case, never by slice.
"""

import dataclasses
from pathlib import Path

import numpy as np

from RaGANLib.data.prepare import survey, write_cache
from RaGANLib.errors import BadInput
from RaGANLib.events import Reporter
from RaGANLib.model.model_info import ModelInfo
from RaGANLib.spec import TrainSpec


@dataclasses.dataclass
class SliceSet:
    """Slices of one set: images in [-1, 1], class indices, and the case number of each slice."""

    images: np.ndarray  # [n, size, size] float
    labels: np.ndarray  # [n, size, size] uint8
    cases: np.ndarray  # [n] int
    # (image file, its SHA-256) of each case, in case order; empty for slices sampled from a model
    case_files: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


@dataclasses.dataclass(frozen=True)
class Space:
    """The common space of all sets: slice size, axis, pixel spacing, intensity mapping and classes."""

    size: int
    axis: str
    spacing: float | None  # None: chosen from the training set
    modality: str  # "auto" until the training set decides
    ct_window: tuple[float, float]
    values: tuple[int, ...] | None  # original label values of classes 0..K-1; None until decided
    names: tuple[str, ...] | None = None  # class names, as the model or the training set's preparation gives them
    colors: tuple[tuple[float, float, float], ...] | None = None  # class colours (r, g, b in 0..1), likewise

    @classmethod
    def of_model(cls, description: ModelInfo) -> "Space":
        return cls(
            size=description.grid.size,
            axis=description.grid.axis,
            spacing=float(description.grid.spacing[0]),
            modality=description.modality,
            ct_window=(description.intensity.low, description.intensity.high),
            values=tuple(c.value for c in description.classes),
            names=tuple(description.names),
            colors=tuple(description.colors),
        )


def input_spec(path: Path, space: Space, slices: str) -> TrainSpec:
    """A spec that reads `path` (nnU-Net folder or pairs file) into `space`."""
    path = Path(path)
    if path.is_dir() and (path / "dataset.json").exists():
        source = {"dataset": str(path.resolve())}
    elif path.is_file() and path.suffix.lower() == ".json" and path.read_text().lstrip().startswith("{"):
        saved = TrainSpec.load(path)  # a run's spec.json: its inputs, whatever form they took
        source = {"dataset": saved.dataset, "pairs_file": saved.pairs_file, "pairs": saved.pairs}
    elif path.is_file() and path.suffix.lower() in (".csv", ".json"):
        source = {"pairs_file": str(path.resolve())}
    elif path.is_dir():
        raise BadInput(f"'{path}' is neither an nnU-Net dataset folder (no dataset.json) nor a RaGAN model folder")
    else:
        raise BadInput(f"'{path}' does not exist or is not a dataset folder or a .csv/.json pairs file")
    spec = TrainSpec(
        **source,
        size=space.size,
        axis=space.axis,
        spacing=space.spacing,
        intensity=space.modality,
        ct_window=list(space.ct_window),
        slices=slices,
    )
    spec.validate(str(path))
    return spec


def read_set(path: Path, space: Space, work: Path, name: str, reporter: Reporter, slices: str = "labelled"):
    """Prepare the cases of `path` in `space` (into `work/name`); returns the slices and the space, now decided."""
    plan = survey(input_spec(path, space, slices), reporter)
    if space.values is not None:
        unknown = sorted(set(plan.values) - set(space.values))
        if unknown:
            raise BadInput(
                f"the {name} set '{path}' has label value(s) {unknown} that the model or training set does not "
                f"know (it has {list(space.values)})"
            )
        plan = dataclasses.replace(plan, values=list(space.values))
    data = write_cache(plan, work / name)
    cases = np.repeat(np.arange(len(data.meta["case_slices"])), data.meta["case_slices"])
    decided = dataclasses.replace(
        space,
        spacing=plan.target,
        modality=plan.modality,
        ct_window=(plan.normalisation.low, plan.normalisation.high) if plan.modality == "ct" else space.ct_window,
        values=tuple(plan.values),
        names=space.names or tuple(c.name for c in data.label_classes),
        colors=space.colors or tuple(c.color for c in data.label_classes),
    )
    # Copies, not views of the memory-mapped cache: the caller may delete `work` (Windows refuses to while mapped).
    files = [(str(case.image), summary.hashes[0]) for case, summary in zip(plan.cases, plan.summaries)]
    return SliceSet(np.array(data.images, np.float32), np.array(data.labels), cases, files), decided
