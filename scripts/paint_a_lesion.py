"""The README's paint-a-lesion picture, made by the code: a conditional model paints an image for a phantom label
slice it never saw, and for the same slice with an extra lesion drawn into the organ, with one latent vector; the
picture shows label | synthetic | edited label | synthetic from the edited label | difference.

    python scripts/paint_a_lesion.py          # trains a conditional model on the demo's phantom cases (600 steps)
    python scripts/paint_a_lesion.py --model runs/painter/model --out painted.png   # a conditional phantom model

Phantom data, the run, the two label files and what was painted go to --work (a new or empty folder; default: a
temporary folder, removed afterwards). Bad input (a joint model, a model without a lesion class, a --work folder with
files in it) ends with exit code 2 and a message naming it, before anything is written.
"""

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from RaGANLib import demo  # noqa: E402 (after the repository is on the path)
from RaGANLib.data import phantom  # noqa: E402 (after the repository is on the path)
from RaGANLib.errors import BadInput, RaGANError  # noqa: E402
from RaGANLib.events import Reporter  # noqa: E402
from RaGANLib.model.model_info import ModelInfo, read_model_info  # noqa: E402
from RaGANLib.results import preview  # noqa: E402 (after the repository is on the path)

HELD_OUT_CASE = 100  # a phantom case seed the demo's training cases (0-7) do not use
CASE_SHAPE = (20, 96, 96)  # the demo's phantom cases
LESION_RADIUS = 4  # pixels of the label's 96 px grid (6.4 mm)
CELL = 192  # pixels per panel in the picture
STEPS = 600  # the README's picture: a conditional model learns the phantom's textures in a few hundred steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a conditional model folder (default: train one)")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps when no --model is given")
    parser.add_argument("--seed", type=int, default=0, help="the latent vector's seed")
    parser.add_argument("--work", type=Path, help="a new or empty folder for the work files (default: temporary)")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "docs" / "paint-a-lesion.png")
    args = parser.parse_args(argv)
    reporter = Reporter()
    try:
        if args.work is None:
            with tempfile.TemporaryDirectory(prefix="paint-a-lesion-") as work:
                paint_a_lesion(args, Path(work), reporter)
        else:
            paint_a_lesion(args, args.work, reporter)
    except RaGANError as error:
        print(f"paint_a_lesion: {error}", file=sys.stderr)
        return error.exit_code
    return 0


def paint_a_lesion(args, work: Path, reporter: Reporter) -> None:
    if args.out.suffix.lower() != ".png":
        raise BadInput(f"--out '{args.out}' must name a .png file")
    if work.exists() and (not work.is_dir() or any(work.iterdir())):
        raise BadInput(f"--work '{work}' must be a new or empty folder")
    info = read_model_info(args.model) if args.model else None
    if info is not None:
        lesion_value(info, args.model)  # refused before any work
    from RaGANLib.results.generate import generate_for_labels
    from RaGANLib.training.trainer import train

    model = args.model
    if model is None:
        data = phantom.write_dataset(work / "data", cases=8, shape=CASE_SHAPE)
        spec = dataclasses.replace(demo.demo_spec(data, args.steps), mode="conditional")
        model = Path(train(spec, work / "run", reporter)["model"])
        info = read_model_info(model)
    label = held_out_label_slice()
    edited = with_drawn_lesion(label, lesion_value(info, model))
    for name, array in (("plain", label), ("edited", edited)):
        volume = sitk.GetImageFromArray(array[None])  # one slice; a flat label keeps its own orientation
        volume.SetSpacing(phantom.SPACING)
        (work / "labels").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(volume, str(work / "labels" / f"{name}.nrrd"))
    painting = Reporter(reporter.json_lines)  # not the training reporter: its events belong to the run folder
    painted = generate_for_labels(model, work / "labels", args.seed, work / "painted", painting)["outputs"]
    images = [sitk.GetArrayFromImage(sitk.ReadImage(f"{painted['images']}/{n}.nrrd"))[0] for n in ("plain", "edited")]
    steps = info.training.steps
    preview.save_png(picture(label, edited, images, info), args.out)
    reporter.notice(f"wrote {args.out}: a phantom label slice painted by a conditional model after {steps} steps")


def lesion_value(info: ModelInfo, model: Path) -> int:
    if not info.conditional:
        raise BadInput(f"model '{model}' is a joint model; painting a lesion needs one trained with --mode conditional")
    for c in info.classes:
        if c.name == "lesion":
            return c.value
    raise BadInput(f"model '{model}' has no class named 'lesion' (train it on phantom cases)")


def held_out_label_slice() -> np.ndarray:
    """The label slice with the largest organ of a phantom case the demo does not train on."""
    _, label = phantom.make_case(HELD_OUT_CASE, CASE_SHAPE)
    return label[np.argmax((label == 1).sum(axis=(1, 2)))]


def with_drawn_lesion(label: np.ndarray, lesion: int) -> np.ndarray:
    """A disc of the lesion class drawn inside the organ, as far from its lesions as it fits: the Segment Editor
    edit of the README's workflow."""
    yy, xx = np.mgrid[-LESION_RADIUS : LESION_RADIUS + 1, -LESION_RADIUS : LESION_RADIUS + 1]
    offsets = np.argwhere(yy**2 + xx**2 <= LESION_RADIUS**2) - LESION_RADIUS
    organ = label == 1
    fits = organ.copy()
    for dy, dx in offsets:  # the centres whose whole disc lies in the organ
        fits &= np.roll(organ, (-dy, -dx), axis=(0, 1))
    centres, lesions = np.argwhere(fits), np.argwhere(label == lesion)
    if not len(centres):
        raise BadInput(f"the organ of phantom case {HELD_OUT_CASE} has no room for a lesion of {LESION_RADIUS} px")
    if len(lesions):
        distances = ((centres[:, None, :] - lesions[None, :, :]) ** 2).sum(axis=2).min(axis=1)
        centre = centres[np.argmax(distances)]
    else:
        centre = centres[len(centres) // 2]
    edited = label.copy()
    edited[tuple((centre + offsets).T)] = lesion
    return edited


def picture(label: np.ndarray, edited: np.ndarray, images: list[np.ndarray], info: ModelInfo) -> Image.Image:
    colors = np.zeros((max(c.value for c in info.classes) + 1, 3), dtype=np.float32)
    for c in info.classes:
        colors[c.value] = c.color
    shown = info.intensity
    black = np.full(label.shape, -1.0)
    difference = np.abs(images[1].astype(np.float64) - images[0])
    scale = max(float(difference.max()), 1.0)
    panels = [
        ("label", preview.overlay(black, label, colors, alpha=1.0)),
        ("synthetic", preview.overlay(shown.forward(images[0]), label, colors, alpha=0.0)),
        ("label + drawn lesion", preview.overlay(black, edited, colors, alpha=1.0)),
        ("synthetic for it", preview.overlay(shown.forward(images[1]), edited, colors, alpha=0.0)),
        (
            f"difference (white {scale:.0f} HU)",
            preview.overlay(difference / scale * 2 - 1, np.zeros_like(label), colors, 0.0),
        ),
    ]
    titled = [
        preview.titled([(title, Image.fromarray(panel).resize((CELL, CELL), Image.Resampling.NEAREST))])
        for title, panel in panels
    ]
    canvas = Image.new("RGB", (sum(t.width for t in titled), titled[0].height))
    for number, part in enumerate(titled):
        canvas.paste(part, (number * CELL, 0))
    return canvas


if __name__ == "__main__":
    sys.exit(main())
