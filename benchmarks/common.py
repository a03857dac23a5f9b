"""What the benchmarks share: a GAN run trained (or reused) in a work folder, --train-option values, a grid of slices
spread over a set, the synthetic slices' seed. The mean ± sd of repeated U-Net runs and the spread rule that compares
two arms are RaGANLib.quality.downstream's summary and compare, as `ragan evaluate` uses them."""

import json
from pathlib import Path

import numpy as np

from RaGANLib.errors import BadInput
from RaGANLib.events import Reporter
from RaGANLib.model.model_info import read_model_info
from RaGANLib.quality.evaluate import slice_grid
from RaGANLib.spec import TrainSpec

SAMPLE_SEED = 1  # the synthetic slices' seed (latents, and a conditional model's layouts) in every benchmark


def train_gan(name: str, spec: TrainSpec, work: Path) -> tuple[Path, float]:
    """Train (or resume, or reuse) the run `work/name`; returns its model folder and the seconds its training took in
    all (from its events: each start to the next finish, so a run reused from an earlier invocation keeps its time).
    A finished run is reused when its model has `spec.steps` steps, resumed when it has fewer, and refused when it has
    more (its figures would pass for the shorter run's): name runs by everything that differs."""
    from RaGANLib.training.trainer import train

    root = work / name
    model = root / "model"
    if (root / "spec.json").exists():
        check_same_run(root, spec)
    made = read_model_info(model).training.steps if model.exists() else 0
    if made > spec.steps:
        raise BadInput(
            f"the GAN run '{root}' holds a model of {made} steps, more than the {spec.steps} asked for; give "
            f"--gan-steps {made} to reuse it, or another --work folder"
        )
    if made < spec.steps:
        with open(work / f"{name}.log", "a") as log:
            train(spec, root, Reporter(stream=log), resume=(root / "checkpoints").exists())
    events = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]
    seconds, begun = 0.0, None
    for event in events:
        if event["event"] == "prepared" and begun is None:
            begun = event["time"]
        elif event["event"] == "finished" and begun is not None:
            seconds, begun = seconds + event["time"] - begun, None
    return model, seconds


def check_same_run(root: Path, spec: TrainSpec) -> None:
    """Refuse to reuse or resume the GAN run in `root` when it was trained with other options than `spec` asks for
    (e.g. made before a default changed): its figures would be passed off as the new setting's. The inputs (the work
    folder's cases), the step count (a longer run is reused) and options left to the device are not compared."""
    saved = TrainSpec.load(root / "spec.json").to_json()
    skipped = ("dataset", "pairs_file", "pairs", "steps", "version")
    wanted = {k: v for k, v in spec.to_json().items() if k not in skipped and v is not None}
    other = sorted(k for k, v in wanted.items() if saved.get(k) != v)
    if other:
        raise BadInput(
            f"the GAN run '{root}' was trained with other {', '.join(other)} than this benchmark asks for; give "
            "another --work folder or --tag (a run is reused only for the same options)"
        )


def spread(slices, colors, count: int = 16):
    """`count` slices spread evenly over a set, as a preview grid."""
    return slice_grid(slices, np.linspace(0, len(slices) - 1, count).astype(int), colors)


def train_options(entries: list[str]) -> dict:
    """--train-option KEY=VALUE entries as spec fields; VALUE is read as JSON where it parses (0.5, true, [1, 2])."""
    options = {}
    for entry in entries:
        key, separator, text = entry.partition("=")
        if not separator or not key.strip():
            raise BadInput(f"--train-option '{entry}' must look like KEY=VALUE, e.g. class_balance=0")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return options
