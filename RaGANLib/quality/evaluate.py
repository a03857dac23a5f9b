"""`ragan evaluate`: how close, how varied, how private and how useful synthetic slices are.

    ragan evaluate --synthetic RUN/model --real train.csv --held-out test.csv --out report/
        [--downstream [--unet-seeds 3]]

Writes report/report.json (every figure), report/report.md (the same, readable), report/samples.png (real against
synthetic) and report/memorisation.png (the synthetic slices closest to a training slice, beside that slice). The
folder appears whole or not at all; it must be new, empty or an earlier report folder (RaGANLib.results.outputs), where
only these files are replaced. Everything runs offline: the features are computed here, no weights are fetched.
With --downstream the report says whether the synthetic pairs help a U-Net beyond the real cases alone and beyond
augmenting the real cases, only where the difference exceeds the spread over the U-Net seeds.
"""

import dataclasses
import functools
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from RaGANLib.errors import BadInput
from RaGANLib.events import Reporter
from RaGANLib.model.model_info import read_model_info
from RaGANLib.quality import downstream, metrics
from RaGANLib.quality.features import slice_features
from RaGANLib.quality.slices import SliceSet, Space, read_set
from RaGANLib.results import outputs, preview
from RaGANLib.results.layouts import moved_pairs
from RaGANLib.seeds import stream
from RaGANLib.spec import OPTIONS
from RaGANLib.training.runfolder import write_json_atomic

WORST_PAIRS = 8
SAME_SCAN_TOLERANCE = 0.01  # on the [-1, 1] scale: two different scans never agree this closely in every pixel
PRIVACY_WARNING = (
    "A synthetic slice that nearly copies a training slice copies a patient's scan: it is a privacy leak, and such "
    "pairs must not leave the institution. Check the flagged pairs in memorisation.png."
)


class Progress:
    """Progress events over weighted units of work, with an ETA from the rate so far."""

    def __init__(self, reporter: Reporter, total: int):
        self.reporter, self.total, self.done, self.start = reporter, total, 0, time.perf_counter()

    def advance(self, stage: str, units: int = 1) -> None:
        self.done += units
        elapsed = time.perf_counter() - self.start
        remaining = elapsed / self.done * (self.total - self.done)
        self.reporter.emit("progress", stage=stage, step=self.done, total=self.total, eta_s=round(remaining, 1))


def sample_model(model: Path, count: int, seed: int, add_rare: int = 0) -> tuple[SliceSet, Space]:
    """`count` slices sampled from a model folder, in the model's space; each is its own 'case'. `add_rare`: more
    components of the rare and thin classes in a conditional model's layouts (results.generate.training_layouts)."""
    from RaGANLib.model.model_folder import load
    from RaGANLib.results.generate import training_layouts
    from RaGANLib.results.synthetic import sample

    generator, description = load(model)
    layouts = training_layouts(model, description, seed, add_rare)
    images, labels = sample(generator, count, seed, description.latent_size, layouts, description.body)
    return SliceSet(images, labels, np.arange(count)), Space.of_model(description)


def fidelity(reference: np.ndarray, other: np.ndarray) -> dict:
    """Frechet distance and unbiased KID between standardised feature sets (our features, not Inception's)."""
    reference, other = metrics.standardise(reference, other)
    kid, kid_std = metrics.kernel_distance(reference, other)
    return {"frechet": float(metrics.frechet_distance(reference, other)), "kid": float(kid), "kid_std": float(kid_std)}


def memorisation_figures(synthetic: SliceSet, training: SliceSet, held_out: SliceSet) -> tuple[dict, dict]:
    """Memorisation figures for the report, and the raw arrays for the worst-pairs picture."""
    found = metrics.memorisation(synthetic.images, training.images, held_out.images)
    flagged = int(np.sum(found["synthetic_ncc"] > found["threshold"]))
    figures = {
        "threshold": round(float(found["threshold"]), 4),
        "share": float(found["share"]),
        "flagged": flagged,
        "synthetic_ncc_max": round(float(np.max(found["synthetic_ncc"])), 4),
        "synthetic_ncc_median": round(float(np.median(found["synthetic_ncc"])), 4),
        "held_out_ncc_median": round(float(np.median(found["held_out_ncc"])), 4),
    }
    return figures, found


def refuse_shared_cases(held_out: SliceSet, training: SliceSet, trained_on: set[str], paths: dict) -> None:
    """Refuse (BadInput) a held-out set that holds a case of the training data: a held-out case the model or --real
    has seen makes the memorisation threshold (NCC near 1) and the downstream Dice void. A case counts as seen when
    its image file's SHA-256 is one the model folder records, or when its prepared slices equal those of a --real
    case (the same scan in another file format or folder: a format that keeps the spacing in single precision moves
    the resampled values by about 1e-6, hence a tolerance). `paths`: the held-out, real and synthetic arguments."""
    real_cases = [training.images[training.cases == number] for number in np.unique(training.cases)]
    shared = []
    for number, (image, sha256) in enumerate(held_out.case_files):
        slices = held_out.images[held_out.cases == number]
        if sha256 in trained_on:
            shared.append(f"'{image}' (the model '{paths['synthetic']}' was trained on this file)")
        elif len(slices) and any(
            real.shape == slices.shape and np.allclose(real, slices, rtol=0, atol=SAME_SCAN_TOLERANCE)
            for real in real_cases
        ):
            shared.append(f"'{image}' (the same scan as a case of --real '{paths['real']}')")
    if shared:
        raise BadInput(
            f"the held-out set '{paths['held_out']}' holds {len(shared)} case(s) of the training data: "
            + ", ".join(shared)
            + ". Held-out cases must be ones the model and --real never saw, or the memorisation check and the "
            "downstream Dice measure nothing: remove them from the held-out set"
        )


def worst_pairs_picture(synthetic: SliceSet, training: SliceSet, found: dict, colors) -> "preview.Image.Image":
    order = np.argsort(-found["synthetic_ncc"])[:WORST_PAIRS]
    nearest = found["nearest"][order]
    scores = ", ".join(f"{found['synthetic_ncc'][i]:.3f}" for i in order)
    return preview.titled(
        [
            (f"synthetic slices most like a training slice (NCC {scores})", slice_grid(synthetic, order, colors)),
            (
                f"their nearest training slices (flag above NCC {found['threshold']:.3f})",
                slice_grid(training, nearest, colors),
            ),
        ]
    )


def slice_grid(slices: SliceSet, chosen, colors):
    """The preview grid of the chosen slices of a set."""
    return preview.grid(np.asarray(slices.images[chosen], np.float32), np.asarray(slices.labels[chosen]), colors)


def class_table(space: Space) -> list[dict]:
    return [{"index": i, "value": int(v), "name": space.names[i]} for i, v in enumerate(space.values)]


def evaluate(
    synthetic: Path,
    real: Path,
    held_out: Path,
    out: Path,
    reporter: Reporter,
    count: int = 1000,
    seed: int = 0,
    size: int = OPTIONS["size"].default,
    with_downstream: bool = False,
    protocol: downstream.UNetProtocol | None = None,
    unet_seeds: int = 1,
) -> dict:
    """Measure the synthetic set against the real ones and write the report folder `out`; returns the figures. Each
    downstream arm is trained with the U-Net seeds protocol.seed, +1, ... (`unet_seeds` of them)."""
    synthetic, real, held_out, out = Path(synthetic), Path(real), Path(held_out), Path(out)
    protocol = protocol or downstream.UNetProtocol()
    for option, value, least in (
        ("--count", count, 2),
        ("--unet-steps", protocol.steps, 1),
        ("--unet-seeds", unet_seeds, 1),
    ):
        if value < least:
            raise BadInput(f"{option} must be at least {least}, got {value}")
    out = Path(os.path.abspath(out))
    outputs.check(out, "report")
    from_model = (synthetic / "model.json").exists()
    seeds = [protocol.seed + k for k in range(unet_seeds)]
    units = 10 + (len(DOWNSTREAM_ARMS) * len(seeds) * (protocol.steps // 50) if with_downstream else 0)
    progress = Progress(reporter, units)
    reporter.emit("started", synthetic=str(synthetic), real=str(real), held_out=str(held_out), out=str(out))

    with tempfile.TemporaryDirectory(prefix="ragan-evaluate-") as work:
        work = Path(work)
        if from_model:
            fake, space = sample_model(synthetic, count, seed)
            progress.advance("sampled synthetic slices")
            training, space = read_set(real, space, work, "training", reporter)
        else:
            space = Space(size, "axial", None, "auto", (-1000.0, 1000.0), None)
            training, space = read_set(real, space, work, "training", reporter)
            fake, _ = read_set(synthetic, space, work, "synthetic", reporter, slices="all")
            progress.advance("read synthetic cases")
        progress.advance("read training cases")
        test, _ = read_set(held_out, space, work, "held-out", reporter)
        trained_on = set(read_model_info(synthetic).training.content_sha256) if from_model else set()
        refuse_shared_cases(test, training, trained_on, {"held_out": held_out, "real": real, "synthetic": synthetic})
        progress.advance("read held-out cases")
    classes, names, colors = len(space.values), list(space.names), space.colors

    features = {}
    for key, slices in (("training", training), ("held_out", test), ("synthetic", fake)):
        features[key], feature_names = slice_features(slices.images, slices.labels, classes)
        progress.advance(f"features of {key} slices")
    augmented = augmented_pairs(training, len(fake), seed)
    progress.advance("augmented real pairs")
    memorised, found = memorisation_figures(fake, training, test)
    # The yardstick: real slices moved as augmentation (and a conditional model's layouts) move them, against the
    # same threshold.
    moved_ncc, _ = metrics.nearest_ncc(augmented.images, training.images)
    memorised["moved_training_share"] = float((moved_ncc > found["threshold"]).mean())
    progress.advance("nearest training slices")
    figures = {
        "sets": {
            "training": {"cases": int(len(np.unique(training.cases))), "slices": len(training)},
            "held_out": {"cases": int(len(np.unique(test.cases))), "slices": len(test)},
            "synthetic": {"slices": len(fake), "source": "model" if from_model else "cases", "seed": seed},
        },
        "space": {
            "size": space.size,
            "axis": space.axis,
            "spacing_mm": round(space.spacing, 4),
            "modality": space.modality,
            "classes": class_table(space),
        },
        "fidelity": {
            "features": len(feature_names),
            "synthetic_vs_training": fidelity(features["training"], features["synthetic"]),
            "held_out_vs_training": fidelity(features["training"], features["held_out"]),
            "fine_detail": {
                "synthetic_vs_training": metrics.fine_detail_ratio(training.images, fake.images),
                "held_out_vs_training": metrics.fine_detail_ratio(training.images, test.images),
            },
        },
        "diversity": {
            "ms_ssim_synthetic": float(metrics.mean_pairwise_ms_ssim(fake.images, seed=seed)),
            "ms_ssim_training": float(metrics.mean_pairwise_ms_ssim(training.images, seed=seed)),
        },
        "labels": {
            "training": _named(metrics.label_statistics(training.labels, classes), names),
            "synthetic": _named(metrics.label_statistics(fake.labels, classes), names),
        },
        "memorisation": memorised,
    }
    detail = figures["fidelity"]["fine_detail"]
    detail["verdict"] = metrics.detail_verdict(detail["synthetic_vs_training"])
    if metrics.detail_is_off(detail["synthetic_vs_training"]):
        reporter.notice(f"the synthetic slices are {detail['verdict']}: look at samples.png")
    progress.advance("diversity and label statistics")

    if with_downstream:
        figures["downstream"] = downstream_figures(fake, training, augmented, test, space, protocol, seeds, progress)

    pictures = {
        "samples.png": preview.titled(
            [
                (
                    "real training slices",
                    slice_grid(training, np.linspace(0, len(training) - 1, 16).astype(int), colors),
                ),
                ("synthetic slices", slice_grid(fake, np.arange(min(16, len(fake))), colors)),
            ]
        ),
        "memorisation.png": worst_pairs_picture(fake, training, found, colors),
    }
    write_report(out, figures, pictures)
    progress.advance("report written")
    reporter.emit("finished", out=str(out), report=str(out / "report.md"))
    return figures


# The downstream arms: the slices each U-Net is trained on and their shares of a batch (equal shares when None).
# real+augmented+synthetic against real+augmented is the clean test: the same real half, the other quarter synthetic
# pairs or more augmented real pairs (downstream.COMPARISONS).
DOWNSTREAM_ARMS = {
    "real": (("real",), None),
    "synthetic": (("synthetic",), None),
    "real+synthetic": (("real", "synthetic"), None),
    "real+augmented": (("real", "augmented"), None),
    "real+augmented+synthetic": (("real", "augmented", "synthetic"), (2, 1, 1)),
}


def augmented_pairs(training: SliceSet, count: int, seed: int) -> SliceSet:
    """`count` training pairs moved by the layouts' random elastic + affine moves, seeded by `seed`: the downstream
    arms' augmented real pairs, and the memorisation check's yardstick."""
    images, labels = moved_pairs(
        np.asarray(training.labels), training.images, count, stream(seed, "augmented real pairs")
    )
    return SliceSet(images, labels, np.arange(count))


def downstream_figures(
    fake: SliceSet,
    training: SliceSet,
    augmented: SliceSet,
    test: SliceSet,
    space: Space,
    protocol: downstream.UNetProtocol,
    seeds: list[int],
    progress: Progress,
) -> dict:
    """Every downstream arm trained once per U-Net seed and tested on the held-out cases: per arm the Dice means, their
    sd over the seeds and each seed's; the label agreement averaged over the seeds' real-trained networks; the
    verdict."""
    classes, names = len(space.values), list(space.names)
    sets = {"real": training, "synthetic": fake, "augmented": augmented}
    settings = {key: value for key, value in dataclasses.asdict(protocol).items() if key != "seed"}
    found = {"protocol": {**settings, "seeds": seeds}, "arms": {}}
    for arm, (kinds, mix) in DOWNSTREAM_ARMS.items():
        results = []
        for unet_seed in seeds:
            results.append(
                downstream.run_arm(
                    [sets[kind] for kind in kinds],
                    test,
                    classes,
                    dataclasses.replace(protocol, seed=unet_seed),
                    functools.partial(_unet_progress, progress, f"{arm} slices, seed {unet_seed}", progress.done),
                    mix=mix,
                    agreement=fake if arm == "real" else None,
                )
            )
        found["arms"][arm] = _dice_over_seeds(results, names)
        counts = downstream.batch_counts(mix, len(kinds), protocol.batch)
        found["arms"][arm]["batch"] = {kind: int(count) for kind, count in zip(kinds, counts)}  # what it trained on
        if arm == "real":
            found["label_agreement"] = {
                "held_out": found["arms"]["real"],
                "synthetic": _dice_over_seeds([result["agreement"] for result in results], names),
            }
    found["verdict"] = downstream.verdict(found["arms"])
    return found


def _unet_progress(progress: Progress, what: str, done_before: int, step: int, total: int) -> None:
    progress.done = done_before + step // 50 - 1
    progress.advance(f"U-Net on {what}, step {step}")


def _named(statistics: dict, names: list[str]) -> dict:
    per_class = statistics.pop("classes")
    return {
        **statistics,
        "classes": {names[e["class"]]: {k: v for k, v in e.items() if k != "class"} for e in per_class},
    }


def _named_dice(result: dict, names: list[str]) -> dict:
    return {
        "dice": {names[c]: round(v, 4) for c, v in result["per_class"].items()},
        "mean_foreground_dice": round(result["mean_foreground"], 4),
    }


def _dice_over_seeds(results: list[dict], names: list[str]) -> dict:
    """One arm's Dice figures over its U-Net seeds: the means under the keys of a single network's figures, so readers
    of those keep working; their sample sd under the same keys + "_sd" (None with one seed: unknown); and each seed's
    figures under "seeds"."""

    def over_seeds(values: list[float]) -> tuple[float, float | None]:
        found = downstream.summary(values)
        return round(found["mean"], 4), round(found["sd"], 4) if found["runs"] > 1 else None

    per_class = {names[c]: over_seeds([r["per_class"][c] for r in results]) for c in results[0]["per_class"]}
    mean, sd = over_seeds([r["mean_foreground"] for r in results])
    return {
        "dice": {name: figures[0] for name, figures in per_class.items()},
        "mean_foreground_dice": mean,
        "dice_sd": {name: figures[1] for name, figures in per_class.items()},
        "mean_foreground_dice_sd": sd,
        "seeds": [_named_dice(result, names) for result in results],
    }


def write_report(out: Path, figures: dict, pictures: dict) -> None:
    """report.json, report.md and the pictures, staged beside `out` and moved in when complete; other files in an
    earlier report folder stay."""
    with outputs.staged(out) as staging:
        write_json_atomic(staging / "report.json", figures)
        (staging / "report.md").write_text(markdown(figures), encoding="utf-8")
        for name, picture in pictures.items():
            preview.save_png(picture, staging / name)
        outputs.publish(staging, out, "report", ("report.json", "report.md", *pictures))


def markdown(figures: dict) -> str:
    """The readable report."""
    sets, fid, div, mem = figures["sets"], figures["fidelity"], figures["diversity"], figures["memorisation"]
    lines = [
        "# RaGAN evaluation",
        "",
        f"Training set: {sets['training']['cases']} cases, {sets['training']['slices']} slices. "
        f"Held-out set: {sets['held_out']['cases']} cases, {sets['held_out']['slices']} slices. "
        f"Synthetic: {sets['synthetic']['slices']} slices (from a {sets['synthetic']['source']}).",
        f"Space: {figures['space']['size']} px, {figures['space']['spacing_mm']} mm pixels, "
        f"{figures['space']['axis']}, {figures['space']['modality']}.",
        "",
        "## Fidelity",
        "",
        f"Frechet distance and KID over RaGAN's own {fid['features']} slice features (intensity histogram, GLCM and "
        "LBP texture, label shape per class), standardised on the training slices. Not FID: no Inception network. "
        "Lower is closer; held-out real slices show what a perfect generator would score.",
        "",
        "| compared with training slices | Frechet distance | KID |",
        "|---|---|---|",
    ]
    for key, title in (("synthetic_vs_training", "synthetic"), ("held_out_vs_training", "held-out real")):
        lines.append(f"| {title} | {fid[key]['frechet']:.3f} | {fid[key]['kid']:.4f} ± {fid[key]['kid_std']:.4f} |")
    detail = fid["fine_detail"]
    lines += [
        "",
        f"Fine detail (the mean square of each slice minus its 3x3 local mean) as a multiple of the training "
        f"slices': synthetic {detail['synthetic_vs_training']:.2f}x, held-out real "
        f"{detail['held_out_vs_training']:.2f}x. **The synthetic slices are {detail['verdict']}.**",
        "",
        "## Diversity",
        "",
        f"Mean pairwise MS-SSIM: synthetic {div['ms_ssim_synthetic']:.3f}, real training {div['ms_ssim_training']:.3f}"
        " (higher means more alike; a synthetic figure far above the real one means too little variety).",
        "",
        "## Labels",
        "",
        "Per class: share of slices that hold it, and its median area (% of the slice) where present.",
        "",
        "| | empty slices | fragmented slices | "
        + " | ".join(f"{n} present | {n} median area" for n in figures["labels"]["training"]["classes"])
        + " |",
        "|---" * (3 + 2 * len(figures["labels"]["training"]["classes"])) + "|",
    ]
    for key in ("training", "synthetic"):
        stats = figures["labels"][key]
        present = " | ".join(
            f"{c['frequency']:.2f} | " + (f"{100 * c['area']['p50']:.1f}" if c["area"] else "-")
            for c in stats["classes"].values()
        )
        lines.append(f"| {key} | {stats['empty_share']:.3f} | {stats['fragmented_share']:.3f} | {present} |")
    verdict = (
        f"**{mem['flagged']} synthetic slices ({mem['share']:.1%}) are closer to a training slice than 99% of "
        "held-out real slices are.** " + PRIVACY_WARNING
        if mem["flagged"]
        else "No synthetic slice is closer to a training slice than 99% of held-out real slices are."
    )
    lines += [
        "",
        "## Memorisation",
        "",
        f"Nearest training slice of every synthetic slice by normalised cross-correlation (NCC). Threshold: the 99th "
        f"percentile of held-out-to-training NCC, {mem['threshold']:.3f}. Highest synthetic NCC "
        f"{mem['synthetic_ncc_max']:.3f}, median {mem['synthetic_ncc_median']:.3f} (held-out median "
        f"{mem['held_out_ncc_median']:.3f}).",
        "",
        verdict,
        "",
        f"Yardstick: as many training slices moved by random elastic + affine moves (augmentation of the real cases; a "
        f"conditional model's label layouts are the training labels moved alike) are flagged at "
        f"{mem['moved_training_share']:.1%}. The check compares whole slices, so synthetic slices that keep the "
        "training slices' outlines are flagged even where their texture is the model's own; a share near or above "
        "the yardstick means they are as close to the patients' scans as augmented copies of them.",
        "",
    ]
    if "downstream" in figures:
        arms = figures["downstream"]["arms"]
        class_names = list(next(iter(arms.values()))["dice"])
        protocol = figures["downstream"]["protocol"]
        seeds = protocol["seeds"]
        lines += [
            "## Downstream segmentation",
            "",
            f"A fixed 2D U-Net ({protocol['steps']} steps, batch {protocol['batch']}) per arm and U-Net seed "
            f"({', '.join(map(str, seeds))}), tested on the held-out cases; Dice per case, averaged"
            + (", then mean ± sd over the seeds." if len(seeds) > 1 else ".")
            + " Slices per batch: "
            + "; ".join(
                f"{arm} " + ", ".join(f"{n} {kind}" for kind, n in found["batch"].items())
                for arm, found in arms.items()
            )
            + ". Augmented: real training pairs moved by random elastic + affine moves, image and label alike, as many "
            "as the synthetic slices.",
            "",
            "| trained on | " + " | ".join(class_names) + " | mean foreground Dice |",
            "|---" * (2 + len(class_names)) + "|",
        ]
        for arm, result in arms.items():
            cells = [_mean_sd(result["dice"][n], result["dice_sd"][n]) for n in class_names]
            cells.append(_mean_sd(result["mean_foreground_dice"], result["mean_foreground_dice_sd"]))
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        verdicts = figures["downstream"]["verdict"].values()
        lines += [
            "",
            "### Do the synthetic pairs help?",
            "",
            "Against the real cases alone, and against augmenting the real cases (the same real half, the other "
            "quarter more augmented pairs): a difference counts only beyond the spread, the root-sum-square of the two "
            "arms' sd over the U-Net seeds.",
            "",
            *[f"- {found['summary']}" for found in verdicts],
            "",
            "| compared | " + " | ".join(class_names) + " | mean foreground Dice |",
            "|---" * (2 + len(class_names)) + "|",
        ]
        for found in verdicts:
            cells = [_difference(found["classes"][n]) for n in class_names] + [_difference(found["mean_foreground"])]
            lines.append(f"| {found['with']} vs {found['without']} | " + " | ".join(cells) + " |")
        agreement = figures["downstream"]["label_agreement"]
        lines += [
            "",
            "### Does each image show what its label says?",
            "",
            "The U-Net trained on the real training slices segments the synthetic images; its result is scored against"
            " the synthetic labels, next to the same network on the held-out real slices (each seed's network, "
            "averaged). A synthetic set whose labels float free of its images scores far below the held-out figure.",
            "",
            "| segmented by the real-trained U-Net | " + " | ".join(class_names) + " | mean foreground Dice |",
            "|---" * (2 + len(class_names)) + "|",
        ]
        for key, title in (("held_out", "held-out real slices"), ("synthetic", "synthetic slices")):
            found = agreement[key]
            cells = [_mean_sd(found["dice"][n], found["dice_sd"][n]) for n in class_names]
            cells.append(_mean_sd(found["mean_foreground_dice"], found["mean_foreground_dice_sd"]))
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Pictures",
        "",
        "![Real training slices above synthetic ones, each plain and with its label](samples.png)",
        "",
        "![The synthetic slices closest to a training slice, above those training slices](memorisation.png)",
        "",
    ]
    return "\n".join(lines)


def _mean_sd(mean: float, sd: float | None) -> str:
    return f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"


def _difference(judged: dict) -> str:
    """A report cell of downstream.verdict: "+0.021 better (spread 0.017)", "+0.004 (spread unknown)"."""
    if judged["difference"] is None:
        return judged["verdict"]
    if judged["spread"] is None:
        return f"{judged['difference']:+.3f} (spread unknown)"
    return f"{judged['difference']:+.3f} {judged['verdict']} (spread {judged['spread']:.3f})"
