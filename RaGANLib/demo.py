"""`ragan demo`: the whole loop on phantom scans made on the spot, in a few minutes on a laptop CPU.

<out>/data/        phantom CT cases as an nnU-Net v2 raw dataset (the usual input form)
<out>/run/         the training run folder (spec, checkpoints, TensorBoard logs, previews, model/)
<out>/synthetic/   generated pairs (NRRD volumes, nnU-Net dataset, preview)
<out>/preview.png  real phantom label slices, the synthetic image the model paints for each, and the real image

The demo trains the conditional mode, the default (on the phantom benchmark with 5 cases, level with the joint mode at
25% synthetic and better at 50%: docs/conditional-vs-joint-phantom.md); its preview puts what the model makes next to
what it should resemble.
"""

import shutil
from pathlib import Path

import numpy as np

from RaGANLib.data import phantom
from RaGANLib.events import Reporter
from RaGANLib.results import outputs, preview
from RaGANLib.spec import TrainSpec

DEMO_STEPS = 900  # with --seg-consistency (the default) about the time 1200 steps took without it
DEMO_CONTENT = ("data", "run", "synthetic", "preview.png")  # what a demo writes into its folder


def demo_spec(data: Path, steps: int) -> TrainSpec:
    return TrainSpec(
        dataset=str(data),
        label_names=phantom.CLASS_NAMES,
        label_colors=phantom.CLASS_COLORS,
        size=64,
        mode="conditional",  # run_demo's preview paints real labels
        ct_window=[-250.0, 350.0],  # a soft-tissue window: the organs differ by tens of HU
        steps=steps,
        batch=16,
        lr=0.0005,
        checkpoint_every=200,
        preview_every=200,
    )


def run_demo(out: Path, reporter: Reporter, steps: int | None = None) -> Path:
    from RaGANLib.data.prepare import load_cache
    from RaGANLib.model.model_folder import load
    from RaGANLib.results.generate import generate
    from RaGANLib.results.synthetic import sample
    from RaGANLib.training.trainer import train

    out = Path(out).resolve()
    if outputs.check(out, "demo"):  # an earlier demo: what it made is made afresh, anything else there stays
        for name in DEMO_CONTENT:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    outputs.claim(out, "demo")
    reporter.notice(f"writing phantom cases to {out / 'data'}")
    data = phantom.write_dataset(out / "data", cases=8)
    spec = demo_spec(data, steps or DEMO_STEPS)
    finished = train(spec, out / "run", reporter)
    if finished["reason"] == "stopped":
        return out / "run" / "previews"
    generated = generate(Path(finished["model"]), 32, 1, out / "synthetic", Reporter(reporter.json_lines))

    # What a user gets, beside what it should look like: real label slices spread over the training set, the image
    # the model paints for each, and the real image of that label.
    cache = load_cache(out / "run" / "cache", spec, reporter)
    colors = [c.color for c in cache.label_classes]
    chosen = np.linspace(0, len(cache.images) - 1, 16).astype(int)
    labels = np.asarray(cache.labels[chosen])
    generator, description = load(Path(finished["model"]))
    images, _ = sample(generator, len(chosen), 1, description.latent_size, iter(labels))
    triplets = preview.side_by_side(labels, images, np.asarray(cache.images[chosen], np.float32), colors)
    title = f"real label | synthetic image painted for it (model of step {finished['model_step']}) | real image"
    picture = preview.titled([(title, triplets)])
    preview.save_png(picture, out / "preview.png")
    reporter.notice(f"demo done: preview {out / 'preview.png'}, synthetic pairs in {generated['nnunet']}")
    return out / "preview.png"
