"""What the benchmarks share: a GAN run trained (or reused) in a work folder, and a grid of slices spread over a set."""

import json
from pathlib import Path

import numpy as np

from RaGANLib.events import Reporter
from RaGANLib.model.model_info import read_model_info
from RaGANLib.quality.evaluate import slice_grid
from RaGANLib.spec import TrainSpec


def train_gan(name: str, spec: TrainSpec, work: Path) -> tuple[Path, float]:
    """Train (or resume, or reuse) the run `work/name`; returns its model folder and the seconds its training took in
    all (from its events: each start to the next finish, so a run reused from an earlier invocation keeps its time).
    A finished run is reused when its model has at least `spec.steps` steps: name runs by everything that differs."""
    from RaGANLib.training.trainer import train

    root = work / name
    model = root / "model"
    if not (model.exists() and read_model_info(model).training.steps >= spec.steps):
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


def spread(slices, colors, count: int = 16):
    """`count` slices spread evenly over a set, as a preview grid."""
    return slice_grid(slices, np.linspace(0, len(slices) - 1, count).astype(int), colors)
