"""Preview pictures: grids of synthetic (or real) slices, each shown plain and with its label overlaid, and the
training previews drawn from a run's EMA generator (without the model-export code: RaGANLib/results/synthetic.py
samples)."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from RaGANLib.quality.metrics import fine_detail_ratio
from RaGANLib.results.synthetic import sample, to_source, write_volumes
from RaGANLib.seeds import seed_of
from RaGANLib.training.runfolder import write_bytes_atomic

PREVIEW_SLICES = 16  # slices a preview shows


def overlay(image: np.ndarray, label: np.ndarray, colors: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 of a [-1, 1] image with class colours blended in; `colors` is [classes, 3] in 0..1."""
    gray = np.clip((image + 1) * 127.5, 0, 255)[..., None].repeat(3, axis=-1)
    tint = colors[label] * 255
    blend = np.where((label > 0)[..., None], (1 - alpha) * gray + alpha * tint, gray)
    return blend.astype(np.uint8)


def grid(images: np.ndarray, labels: np.ndarray, colors, columns: int = 8, cell: int = 96) -> Image.Image:
    """Rows of plain slices, each followed by a row of the same slices with labels overlaid."""
    colors = np.asarray(colors, dtype=np.float32)
    count = len(images)
    rows = []
    for start in range(0, count, columns):
        chunk = range(start, min(count, start + columns))
        plain = [overlay(images[i], labels[i], colors, alpha=0.0) for i in chunk]
        tinted = [overlay(images[i], labels[i], colors) for i in chunk]
        for line in (plain, tinted):
            line = line + [np.zeros_like(line[0])] * (columns - len(line))
            rows.append(np.concatenate(line, axis=1))
    picture = Image.fromarray(np.concatenate(rows, axis=0))
    scale = cell / images.shape[1]
    return picture.resize((int(picture.width * scale), int(picture.height * scale)), Image.Resampling.NEAREST)


def side_by_side(labels, synthetic, real, colors, columns: int = 4, cell: int = 96) -> Image.Image:
    """A conditional model's slices as triplets: the label (colours on black) | the synthetic image made for it |
    the real image of that label; `columns` triplets per row."""
    colors = np.asarray(colors, dtype=np.float32)
    black = np.full(labels.shape[1:], -1.0)
    triplets = [
        np.concatenate(
            [
                overlay(black, labels[i], colors, alpha=1.0),
                *(overlay(x[i], labels[i], colors, 0.0) for x in (synthetic, real)),
            ],
            axis=1,
        )
        for i in range(len(labels))
    ]
    triplets += [np.zeros_like(triplets[0])] * (-len(triplets) % columns)
    rows = [np.concatenate(triplets[i : i + columns], axis=1) for i in range(0, len(triplets), columns)]
    picture = Image.fromarray(np.concatenate(rows, axis=0))
    scale = cell / labels.shape[1]
    return picture.resize((int(picture.width * scale), int(picture.height * scale)), Image.Resampling.NEAREST)


def slices_picture(images, labels, colors, title: str) -> Image.Image:
    """The first PREVIEW_SLICES slices under a title, plain and with labels overlaid."""
    return titled([(title, grid(images[:PREVIEW_SLICES], labels[:PREVIEW_SLICES], colors))])


def titled(parts: list[tuple[str, Image.Image]]) -> Image.Image:
    """Stack pictures vertically, each under a one-line title."""
    width = max(p.width for _, p in parts)
    height = sum(p.height + 22 for _, p in parts)
    canvas = Image.new("RGB", (width, height), (20, 20, 20))
    draw = ImageDraw.Draw(canvas)
    y = 0
    for title, picture in parts:
        draw.text((6, y + 5), title, fill=(235, 235, 235))
        canvas.paste(picture, (0, y + 22))
        y += picture.height + 22
    return canvas


def save_png(picture: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


class TrainingPreview:
    """A run's preview at a step, from the EMA generator and fixed latents, as a picture and as image and label
    stacks in source units. Joint: the first PREVIEW_SLICES synthetic slices. Conditional: the same real slices each
    time, as triplets of their label | the synthetic image painted for it | the real image."""

    def __init__(self, data, spec, latent_size: int):
        self.latent_seed = seed_of(spec.seed, "preview")
        self.latent_size, self.data, self.conditional = latent_size, data, spec.mode == "conditional"
        self.shown = np.sort(np.random.default_rng(self.latent_seed).permutation(len(data.labels))[:PREVIEW_SLICES])

    def write(self, generator, description, folder: Path, step: int) -> tuple[Image.Image, dict]:
        """Write preview-STEP.png and the preview stacks into `folder` for `description` (the model.json the
        generator would have now); returns the picture and what the preview event reports: the written files (png,
        image, label) and `fine_detail`, the synthetic slices' fine detail as a multiple of the shown real slices'
        (RaGANLib/quality/metrics.py: below 0.5 blurred, above 1.5 grainy)."""
        real = np.asarray(self.data.images[self.shown], dtype=np.float32)
        if self.conditional:
            layouts = iter(np.asarray(self.data.labels[self.shown]))
            images, labels = sample(
                generator, len(self.shown), self.latent_seed, self.latent_size, layouts, description.body
            )
            title = f"step {step}: label | synthetic | real"
            picture = titled([(title, side_by_side(labels, images, real, description.colors))])
        else:
            images, labels = sample(generator, PREVIEW_SLICES, self.latent_seed, self.latent_size)
            picture = slices_picture(images, labels, description.colors, f"step {step}")
        png = folder / f"preview-{step:08d}.png"
        save_png(picture, png)
        volumes = write_volumes(folder, *to_source(images, labels, description), description, stem="preview")
        return picture, {"png": str(png), **volumes, "fine_detail": round(fine_detail_ratio(real, images), 3)}
