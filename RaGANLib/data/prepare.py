"""Preparation: turn labelled volumes into a cache of normalised training slices in the run folder.

Two passes over the cases, one case in memory at a time. The first reads and checks every case (so bad input stops
the run before anything is written) and fixes the common grid: one in-plane pixel spacing for all cases, chosen so the
largest field of view fits the training size; smaller cases are centred and padded with background. The second
writes the chosen slices, normalised to [-1, 1], to `cache/images.npy` (float16) and `cache/labels.npy` (class
indices) through plain file writes (a memory-mapped write on a full disk would kill the process with SIGBUS), and
`cache/meta.json` last, with each file's size and SHA-256 and each case's input hashes: a cache without meta.json, or
whose files do not match it, is incomplete and is rebuilt; a cache whose inputs changed is rebuilt or refused.
"""

import dataclasses
import errno
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RaGANLib.data.inputs import Case, file_hash, find_cases, read_case
from RaGANLib.errors import BadInput, DiskFull, describe_space, read_json
from RaGANLib.events import Reporter
from RaGANLib.model.model_info import MAX_LABEL_VALUE, LabelClass, Normalisation, SliceGrid, TrainingData
from RaGANLib.seeds import stream
from RaGANLib.spec import OPTIONS, TrainSpec
from RaGANLib.training.runfolder import write_json_atomic

MAX_MAGNIFICATION = 2.0  # a case whose voxels would be enlarged more than this is refused
MAX_CLASSES = 32
PALETTE = [
    [0.9, 0.3, 0.25],
    [0.95, 0.85, 0.2],
    [0.3, 0.75, 0.35],
    [0.25, 0.55, 0.95],
    [0.8, 0.4, 0.85],
    [0.3, 0.85, 0.85],
    [0.95, 0.6, 0.2],
    [0.6, 0.6, 0.6],
]


def to_slices(volume: np.ndarray, spacing: tuple[float, float, float], axis: str):
    """Reorder a [z, y, x] LPS volume into [slice, row, column] for the axis, with superior at the top of non-axial
    slices; returns the stack, its (row, column) spacing and the slice thickness."""
    sx, sy, sz = spacing
    if axis == "axial":
        return volume, (sy, sx), sz
    if axis == "coronal":
        return volume.transpose(1, 0, 2)[:, ::-1, :], (sz, sx), sy
    return volume.transpose(2, 0, 1)[:, ::-1, :], (sz, sy), sx


def slice_directions(axis: str) -> tuple[tuple[float, float, float], ...]:
    """The LPS directions in which a `to_slices` stack's column, row and slice indices step (the source being
    LPS-oriented): what a synthetic stack's header needs so that it lies as the training slices did. Read off
    `to_slices` itself, so the two cannot disagree."""
    stacked = [to_slices(index, (1.0, 1.0, 1.0), axis)[0] for index in np.indices((2, 2, 2))]  # source z, y, x

    def step(index) -> tuple[float, float, float]:
        return tuple(float(c[index] - c[0, 0, 0]) for c in reversed(stacked))  # (x, y, z): L, P, S

    return step((0, 0, 1)), step((0, 1, 0)), step((1, 0, 0))


@dataclasses.dataclass
class CaseSummary:
    """What the first pass learns about a case."""

    shape: tuple[int, int, int]  # slices, rows, columns along the chosen axis
    pixel_spacing: tuple[float, float]
    thickness: float
    values: list[int]
    chosen: list[int]
    low: float  # robust intensity range (0.5th and 99.5th percentile)
    high: float
    hashes: list[str]


@dataclasses.dataclass
class PreparedData:
    """The slice cache and what the model folder records about it."""

    images: np.ndarray  # [n, size, size] float16 in [-1, 1] (memory-mapped)
    labels: np.ndarray  # [n, size, size] uint8 class indices
    meta: dict  # cache/meta.json

    @property
    def classes(self) -> list[dict]:
        """meta.json's classes as written (see `label_classes`)."""
        return self.meta["classes"]

    @property
    def label_classes(self) -> tuple[LabelClass, ...]:
        return tuple(LabelClass.from_json(c) for c in self.meta["classes"])

    @property
    def normalisation(self) -> Normalisation:
        return Normalisation.from_json(self.meta["intensity"])

    @property
    def grid(self) -> SliceGrid:
        return SliceGrid.from_json(self.meta)

    @property
    def modality(self) -> str:
        return self.meta["modality"]

    def training_data(self, spec: TrainSpec, steps: int) -> TrainingData:
        """model.json's summary of these slices as the training data of `spec`, trained for `steps` steps."""
        meta = self.meta
        return TrainingData(
            cases=meta["cases"],
            slices=meta["slices"],
            class_pixel_fraction=tuple(meta["class_pixel_fraction"]),
            content_sha256=tuple(meta["content_sha256"]),
            steps=steps,
            batch=spec.batch,
            seed=spec.seed,
        )


def cache_key(spec: TrainSpec) -> str:
    identity = {
        name: getattr(spec, name) for name in TrainSpec.IDENTITY if name not in ("arch", "width", "mode", "batch")
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class PreparationStopped(Exception):
    """A stop was requested between two cases; the cache was left without meta.json, so it is never trusted."""


CACHE_FILES = {"images.npy": np.float16, "labels.npy": np.uint8}


def load_cache(
    folder: Path, spec: TrainSpec, reporter: Reporter, refuse_changed_inputs: bool = False
) -> PreparedData | None:
    """The cached slices of a run, if complete, undamaged, and made with the same preparation options from the same
    input files; None when it must be (re)built. Changed inputs are refused (BadInput) if `refuse_changed_inputs`."""
    if not (folder / "meta.json").exists():
        return None
    try:
        meta = read_json(folder / "meta.json", "slice cache description")
    except BadInput as error:
        reporter.notice(f"the slice cache '{folder}' cannot be used ({error}); preparing it again")
        return None
    if not isinstance(meta, dict) or meta.get("key") != cache_key(spec):
        return None
    changed = changed_inputs(meta, spec, reporter)
    if changed and refuse_changed_inputs:
        raise BadInput(
            f"the input files changed since the run was prepared: {'; '.join(changed)}. Resume with "
            "--accept-changed-inputs to train on the files as they are now, or start a new run folder"
        )
    if changed:
        reporter.notice(f"the input files changed since the cache was prepared ({'; '.join(changed)}); preparing again")
        return None
    try:
        arrays = [_checked_cache_file(folder / name, dtype, meta) for name, dtype in CACHE_FILES.items()]
    except (OSError, ValueError, KeyError, TypeError) as error:
        reporter.notice(f"the slice cache '{folder}' cannot be used ({error}); preparing it again")
        return None
    return PreparedData(*arrays, meta)


def _checked_cache_file(path: Path, dtype, meta: dict) -> np.ndarray:
    """A cache file, memory-mapped read-only, after checking its size, shape, type and SHA-256 against meta.json."""
    recorded = meta["files"][path.name]
    if not path.is_file():
        raise ValueError(f"{path.name} is missing")
    if path.stat().st_size != recorded["bytes"]:
        raise ValueError(f"{path.name} has {path.stat().st_size} bytes, not {recorded['bytes']}")
    array = np.load(path, mmap_mode="r")
    expected = (meta["slices"], meta["size"], meta["size"])
    if array.dtype != dtype or array.shape != expected:
        raise ValueError(f"{path.name} holds {array.dtype} {array.shape}, not {np.dtype(dtype)} {expected}")
    if file_hash(path) != recorded["sha256"]:
        raise ValueError(f"{path.name} does not match its SHA-256 (damaged on disk)")
    return array


def find_cases_privately(spec: TrainSpec, reporter: Reporter) -> tuple[list[Case], dict[str, str], str]:
    """`find_cases`, after telling the reporter that the input paths must not reach the run folder."""
    reporter.keep_private([spec.dataset, spec.pairs_file, *(path for pair in spec.pairs for path in pair)])
    cases, names, channel = find_cases(spec)
    reporter.keep_private(str(p) for c in cases for p in (c.image, c.label, c.image.resolve(), c.label.resolve()))
    return cases, names, channel


def changed_inputs(meta: dict, spec: TrainSpec, reporter: Reporter) -> list[str]:
    """The input files whose content is not what the cache was prepared from. Missing files only get a notice: the
    cache holds all that training needs (the run folder resumes without the inputs mounted)."""
    try:
        cases, _, _ = find_cases_privately(spec, reporter)
    except BadInput as error:
        reporter.notice(f"the inputs cannot be listed ({error}); using the slices prepared from them")
        return []
    recorded = meta.get("case_sha256", [])
    changed = [f"{len(cases)} cases now, {len(recorded)} when prepared"] if len(cases) != len(recorded) else []
    missing = []
    for case, hashes in zip(cases, recorded):
        for path, wanted in zip((case.image, case.label), hashes):
            if not path.exists():
                missing.append(f"'{path}'")
            elif file_hash(path) != wanted:
                changed.append(f"'{path}' changed")
    if missing and not changed:
        reporter.notice(f"input files are missing ({', '.join(missing)}); using the slices prepared from them")
    return changed


def _summarise(case: Case, spec: TrainSpec, index: int, notices: list[str]) -> CaseSummary:
    image, label, spacing = read_case(case, notices)
    stack, pixel_spacing, thickness = to_slices(label, spacing, spec.axis)
    labelled = [i for i in range(stack.shape[0]) if stack[i].any()]
    if spec.slices == "all":
        chosen = list(range(stack.shape[0]))
    else:
        empty = sorted(set(range(stack.shape[0])) - set(labelled))
        extra = min(len(empty), int(round(spec.empty_ratio * len(labelled))))
        rng = stream(spec.seed, "empty slices", index)
        chosen = sorted(
            labelled + [int(i) for i in rng.choice(empty, size=extra, replace=False)] if extra else labelled
        )
    # In place: this copy of the volume is ours, and a sorted copy of a CT would cost as much again.
    low, high = np.percentile(image.reshape(-1), [0.5, 99.5], overwrite_input=True)
    if high <= low:  # mostly constant: fall back to the full range
        low, high = float(image.min()), float(image.max())
    if high <= low:
        raise BadInput(f"image '{case.image}' has the same value everywhere; nothing to learn from")
    return CaseSummary(
        shape=stack.shape,
        pixel_spacing=pixel_spacing,
        thickness=thickness,
        values=sorted({0}.union(*(np.unique(stack[i]).tolist() for i in labelled))),  # slice by slice: no full copy
        chosen=chosen,
        low=float(low),
        high=float(high),
        hashes=[file_hash(case.image), file_hash(case.label)],
    )


def _modality(spec: TrainSpec, channel: str, summaries: list[CaseSummary]) -> str:
    if spec.intensity != "auto":
        return spec.intensity
    if channel.upper() == "CT":
        return "ct"
    if all(s.shape[0] == 1 for s in summaries) and spec.axis == "axial":
        return "xray"
    # CT shows air near -1000 HU; MR and normalised images have no such negative values.
    return "ct" if np.median([s.low for s in summaries]) < -500 else "mr"


def from_slices(stack: np.ndarray, axis: str) -> np.ndarray:
    """The [z, y, x] LPS volume of a [slice, row, column] stack made by `to_slices` along `axis` (its inverse)."""
    if axis == "axial":
        return stack
    if axis == "coronal":
        return stack[:, ::-1, :].transpose(1, 0, 2)
    return stack[:, ::-1, :].transpose(1, 2, 0)


def resample_slices(stack: np.ndarray, pixel_spacing, target, size, linear: bool) -> np.ndarray:
    """Resample a [n, rows, cols] stack in-plane onto a centred grid of size x size (or (rows, cols)) pixels of
    `target` mm (or (row, column) mm); generate maps a model's slices back onto a label's grid with it."""
    rows_mm, columns_mm = (target, target) if np.isscalar(target) else target
    rows, columns = (size, size) if np.isscalar(size) else size
    volume = sitk.GetImageFromArray(np.ascontiguousarray(stack))
    volume.SetSpacing((pixel_spacing[1], pixel_spacing[0], 1.0))
    if linear:
        variance = [
            max(0.0, (t**2 - s**2) / 4) for t, s in ((columns_mm, pixel_spacing[1]), (rows_mm, pixel_spacing[0]))
        ]
        if max(variance) > 0:  # smooth before shrinking so that fine noise does not alias
            volume = sitk.DiscreteGaussian(volume, variance + [0.0], 32, 0.01, True)
    centre_in = [(n - 1) / 2 * s for n, s in zip(volume.GetSize()[:2], volume.GetSpacing()[:2])]
    origin = [centre_in[0] - (columns - 1) / 2 * columns_mm, centre_in[1] - (rows - 1) / 2 * rows_mm, 0.0]
    return sitk.GetArrayFromImage(
        sitk.Resample(
            volume,
            (columns, rows, stack.shape[0]),
            sitk.Transform(),
            sitk.sitkLinear if linear else sitk.sitkNearestNeighbor,
            origin,
            (columns_mm, rows_mm, 1.0),
            (1, 0, 0, 0, 1, 0, 0, 0, 1),
            -1.0 if linear else 0,
        )
    )


@dataclasses.dataclass
class Survey:
    """What the first pass decided: the cases, the common grid, classes and intensity mapping."""

    spec: TrainSpec
    cases: list[Case]
    summaries: list[CaseSummary]
    label_names: dict[str, str]
    target: float
    values: list[int]
    modality: str
    normalisation: Normalisation


def class_names(values: list[int], label_names: dict[str, str]) -> list[str]:
    """The name of each class (by original label value); two classes with one name are refused, since every
    synthetic segment is looked up by its name."""
    names = ["background" if v == 0 else label_names.get(str(v), f"label_{v}") for v in values]
    for index, name in enumerate(names):
        if name in names[:index]:
            first = values[names.index(name)]
            raise BadInput(
                f"label values {first} and {values[index]} are both named '{name}' (by --label-name, the spec's "
                "label_names or dataset.json); give each class its own name"
            )
    return names


def _check_label_values(cases: list[Case], summaries: list[CaseSummary], spec: TrainSpec, named: dict) -> None:
    """Refuse label values that the outputs cannot hold, or that the dataset.json does not name."""
    for case, summary in zip(cases, summaries):
        if summary.values[-1] > MAX_LABEL_VALUE:
            raise BadInput(
                f"label '{case.label}' holds the value {summary.values[-1]}; label values must be 0..{MAX_LABEL_VALUE}"
            )
        unnamed = [v for v in summary.values if v and str(v) not in named]
        if spec.dataset and unnamed:
            raise BadInput(
                f"label '{case.label}' holds the value {unnamed[0]}, which '{Path(spec.dataset) / 'dataset.json'}' "
                'does not name in its "labels"; add it there (name -> value)'
            )


def survey(spec: TrainSpec, reporter: Reporter, stop=lambda: None) -> Survey:
    """First pass: read and check every case (writing nothing), decide the grid, classes and intensity mapping.
    With `spec.spacing` set, the grid is that spacing and larger fields of view are cropped around their centre.
    `stop()` is asked between cases; a reason it returns raises PreparationStopped."""
    cases, dataset_names, channel = find_cases_privately(spec, reporter)
    notices: list[str] = []
    summaries = []
    for index, case in enumerate(cases):
        _check_stop(stop)
        found: list[str] = []
        summaries.append(_summarise(case, spec, index, found))
        notices += [f"case {index + 1} of {len(cases)}: {message}" for message in found]
    _check_label_values(cases, summaries, spec, dataset_names)
    label_names = {**dataset_names, **spec.label_names}
    for message in notices:
        reporter.notice(message)
    fields = [max(s.shape[1] * s.pixel_spacing[0], s.shape[2] * s.pixel_spacing[1]) for s in summaries]
    target = spec.spacing or max(fields) / spec.size
    for case, summary in zip(cases, summaries):
        magnification = max(summary.pixel_spacing) / target
        if magnification > MAX_MAGNIFICATION:
            raise BadInput(
                f"image '{case.image}' is {summary.shape[1]}x{summary.shape[2]} voxels in the slice plane, smaller "
                f"than the training size {spec.size}: it would be magnified {magnification:.1f}x. "
                f"Use a smaller size (e.g. {max(OPTIONS['size'].metadata['rule']['low'], spec.size // 2)})"
            )
    padded = sum(f < target * spec.size * 0.95 for f in fields)
    if padded:
        reporter.notice(
            f"{padded} of {len(cases)} cases cover less than the {spec.size}px slice; padded with background"
        )
    values = sorted(set().union(*(s.values for s in summaries)) | {0})
    if len(values) > MAX_CLASSES:
        raise BadInput(f"the labels hold {len(values)} different values; RaGAN trains at most {MAX_CLASSES} classes")
    class_names(values, label_names)
    modality = _modality(spec, channel, summaries)
    if modality == "ct":
        normalisation = Normalisation(*spec.ct_window)
    else:
        normalisation = Normalisation(
            float(np.mean([s.low for s in summaries])), float(np.mean([s.high for s in summaries]))
        )
    if sum(len(s.chosen) for s in summaries) == 0:
        raise BadInput("no slices to train on: no case has a labelled slice along the chosen axis")
    return Survey(spec, cases, summaries, label_names, target, values, modality, normalisation)


def _check_stop(stop) -> None:
    reason = stop()
    if reason:
        raise PreparationStopped(reason)


def write_cache(plan: Survey, cache_folder: Path, stop=lambda: None) -> PreparedData:
    """Second pass: write the chosen slices, normalised and resampled, into the cache; meta.json last.
    `stop()` is asked between cases; on a stop or any failure the partial files are removed."""
    spec, cases, summaries, values, target = plan.spec, plan.cases, plan.summaries, plan.values, plan.target
    modality, normalisation, label_names = plan.modality, plan.normalisation, plan.label_names
    count = sum(len(s.chosen) for s in summaries)
    shape = (count, spec.size, spec.size)
    cache_folder.mkdir(parents=True, exist_ok=True)
    for name in ("meta.json", *CACHE_FILES):  # without meta.json nothing here is trusted, so clear the old files first
        (cache_folder / name).unlink(missing_ok=True)
    needed = sum(count * spec.size**2 * np.dtype(dtype).itemsize + 4096 for dtype in CACHE_FILES.values())
    if shutil.disk_usage(cache_folder).free < needed:
        raise DiskFull(
            f"not enough space for the slice cache in '{cache_folder}' ({count} slices of {spec.size}x{spec.size})"
            + describe_space(cache_folder, needed)
        )
    lookup = np.zeros(max(values) + 1, dtype=np.uint8)
    lookup[values] = np.arange(len(values))
    pixel_counts = np.zeros(len(values), dtype=np.int64)
    files = {}
    try:
        for name, dtype in CACHE_FILES.items():
            files[name] = _SliceFile(cache_folder / name, dtype, shape)
        for case, summary in zip(cases, summaries):
            _check_stop(stop)
            image, label, spacing = read_case(case, [])
            case_norm = normalisation if modality == "ct" else Normalisation(summary.low, summary.high)
            stack, pixel_spacing, _ = to_slices(image, spacing, spec.axis)
            label_stack, _, _ = to_slices(label, spacing, spec.axis)
            chosen_images = case_norm.forward(stack[summary.chosen].astype(np.float32))  # float32 of few slices only
            chosen_labels = label_stack[summary.chosen].astype(np.int32)
            del image, label, stack, label_stack  # release this case before the next is read
            class_indices = lookup[resample_slices(chosen_labels, pixel_spacing, target, spec.size, False)]
            files["images.npy"].write(resample_slices(chosen_images, pixel_spacing, target, spec.size, True))
            files["labels.npy"].write(class_indices)
            pixel_counts += np.bincount(class_indices.ravel(), minlength=len(values))
        recorded = {name: file.close() for name, file in files.items()}
    except BaseException as error:
        for file in files.values():
            file.discard()
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"the disk became full while writing the slice cache in '{cache_folder}'"
                + describe_space(cache_folder, needed)
            ) from None
        raise

    classes = []
    for index, (value, name) in enumerate(zip(values, class_names(values, label_names))):
        color = (
            [0.0, 0.0, 0.0] if value == 0 else spec.label_colors.get(str(value), PALETTE[(index - 1) % len(PALETTE)])
        )
        classes.append(LabelClass(index, value, name, tuple(color)))
    per_case = dataclasses.replace(normalisation, per_case=modality != "ct")
    grid = SliceGrid(spec.size, (target, target), float(np.median([s.thickness for s in summaries])), spec.axis)
    meta = {
        "key": cache_key(spec),
        "cases": len(cases),
        "slices": count,
        "case_slices": [len(s.chosen) for s in summaries],
        "classes": [c.to_json() for c in classes],
        "class_pixel_fraction": [round(float(c / pixel_counts.sum()), 6) for c in pixel_counts],
        "modality": modality,
        "intensity": per_case.to_json(),
        **grid.to_json(),
        "content_sha256": sorted(h for s in summaries for h in s.hashes),
        "case_sha256": [s.hashes for s in summaries],  # [image, label] per case, in case order
        "files": recorded,
    }
    write_json_atomic(cache_folder / "meta.json", meta)
    return PreparedData(*(np.load(cache_folder / name, mmap_mode="r") for name in CACHE_FILES), meta)


class _SliceFile:
    """An .npy file written slice block by slice block through a plain file handle, hashed on the way."""

    def __init__(self, path: Path, dtype, shape: tuple[int, int, int]):
        self.path, self.dtype, self.shape = path, np.dtype(dtype), shape
        self.handle = open(path, "wb")
        self.digest = hashlib.sha256()
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": self.dtype.str, "fortran_order": False, "shape": shape})
        self._put(header.getvalue())
        self.slices = 0

    def _put(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)

    def write(self, block: np.ndarray) -> None:
        self._put(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.slices += len(block)

    def close(self) -> dict:
        """Flush to disk; returns what meta.json records of the file."""
        if self.slices != self.shape[0]:
            raise RuntimeError(f"{self.path.name}: wrote {self.slices} slices, expected {self.shape[0]}")
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return {"bytes": self.path.stat().st_size, "sha256": self.digest.hexdigest()}

    def discard(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


def prepare(spec: TrainSpec, cache_folder: Path, reporter: Reporter) -> PreparedData:
    """Read, check and slice every case of the spec into the cache, or reuse a complete cache."""
    cached = load_cache(cache_folder, spec, reporter)
    if cached is not None:
        reporter.notice(f"reusing {cached.meta['slices']} prepared slices from {cache_folder}")
        return cached
    return write_cache(survey(spec, reporter), cache_folder)
