"""Benchmark arm on phantom CT: do synthetic pairs from a GAN trained on a few cases help a U-Net segment unseen ones?

    .venv/bin/python benchmarks/phantom_arm.py                                  # about 90 min on 2 busy CPU cores
    .venv/bin/python benchmarks/phantom_arm.py --train-option class_balance=0   # any `ragan train` option, compared
    .venv/bin/python benchmarks/phantom_arm.py --gan-steps 4000 --gan-seeds 3   # longer, with the GAN's own spread
    .venv/bin/python benchmarks/phantom_arm.py --count 800 --keep-agreeing 400  # only pairs whose image shows the label

Phantom cases (RaGANLib.data.phantom) are written to the work folder: a few training cases and more held-out ones, made
from other seeds. The phantom's vessels (1-3 px wide) are the thin structure that blurred synthetic slices lose and that
a lesion blob hides. A GAN is trained on the few cases with the demo's settings (64 px) plus the --train-option values,
its synthetic slices are sampled, and a fixed U-Net is trained on the few real cases mixed with synthetic slices at
several shares of each batch (0% = the real cases alone, 100% = synthetic alone), once per U-Net seed and GAN seed,
and tested on the held-out cases: Dice per class (vessel on its own) as mean ± sd over the runs. A mixed arm is called
better or worse than the real cases alone only when the difference of the means is larger than the spread, the
root-sum-square of the two standard deviations; otherwise "within the spread". It also reports Frechet distance and
KID on RaGAN's own features, diversity, memorisation, each class's share of the synthetic pixels and each class's
intensity (mean and spread) in synthetic and real slices.

With --keep-agreeing K, each U-Net seed's real-alone network (the checker: the same protocol and seed) segments every
sampled synthetic image, each pair is scored by how well that segmentation agrees with its label
(RaGANLib.quality.agreement), and the mixed arms of that U-Net seed train on the K best-agreeing pairs only. The
scores of kept and dropped pairs and of the held-out real slices are reported, and
docs/benchmark-phantom[-TAG]-agreement.png shows the worst-agreeing pairs with the checker's segmentation.

Writes docs/benchmark-phantom[-TAG].md, docs/benchmark-phantom[-TAG].png (real against synthetic slices) and the
figures as JSON in the work folder. GAN runs are kept there by tag and seed and reused when run again.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from common import SAMPLE_SEED, spread, train_gan, train_options  # noqa: E402

from RaGANLib.data import phantom  # noqa: E402
from RaGANLib.demo import demo_spec  # noqa: E402
from RaGANLib.errors import BadInput  # noqa: E402
from RaGANLib.events import Reporter  # noqa: E402
from RaGANLib.quality import agreement, downstream, metrics  # noqa: E402
from RaGANLib.quality.evaluate import fidelity, memorisation_figures, sample_model  # noqa: E402
from RaGANLib.quality.features import class_pixel_counts, slice_features  # noqa: E402
from RaGANLib.quality.slices import read_set  # noqa: E402
from RaGANLib.results import preview  # noqa: E402
from RaGANLib.spec import TrainSpec  # noqa: E402

SHAPE = (20, 96, 96)  # slices, rows, columns of each phantom case; the demo's
THIN_CLASS = "vessel"
WORST_SHOWN = 16  # worst-agreeing pairs in the agreement picture, per GAN seed


def gan_spec(data: Path, steps: int, seed: int, options: dict) -> TrainSpec:
    """The demo's training settings on `data`, with the seed and the extra options (validated like a spec file)."""
    base = dataclasses.replace(demo_spec(data, steps), seed=seed, checkpoint_every=500, preview_every=500)
    return TrainSpec.from_json({**base.to_json(), **options}, "--train-option")


def class_intensity(slices, names) -> dict:
    """Each class's mean and standard deviation of intensity over a set of slices: whether synthetic organs stand
    out from the body as much as real ones, and are as noisy."""
    return {
        name: {
            "mean": float(slices.images[slices.labels == c].mean()),
            "sd": float(slices.images[slices.labels == c].std()),
        }
        for c, name in enumerate(names)
        if (slices.labels == c).any()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ragan-benchmark-phantom")
    parser.add_argument("--docs", type=Path, default=REPOSITORY / "docs")
    parser.add_argument("--tag", default="", help="names the GAN runs and the docs files (e.g. the mode compared)")
    parser.add_argument("--train-option", action="append", default=[], metavar="KEY=VALUE", help="a spec option")
    parser.add_argument("--train-cases", type=int, default=5, help="phantom cases the GAN and U-Nets learn from")
    parser.add_argument("--held-out-cases", type=int, default=8, help="phantom cases the U-Nets are tested on")
    parser.add_argument(
        "--gan-steps", type=int, default=1800, help="1800: at 600 (the quick look) the synthetic slices are still soft"
    )
    parser.add_argument("--gan-seeds", type=int, default=1)
    parser.add_argument(
        "--first-gan-seed", type=int, default=0, help="start the GAN seeds here: add seeds to an earlier run's"
    )
    parser.add_argument("--unet-steps", type=int, default=600, help="600: the real-alone arm is not converged at 200")
    parser.add_argument("--unet-seeds", type=int, default=3)
    parser.add_argument(
        "--first-unet-seed", type=int, default=0, help="start the U-Net seeds here: add seeds to an earlier run's"
    )
    parser.add_argument("--count", type=int, default=400, help="synthetic slices sampled per GAN")
    parser.add_argument(
        "--add-rare", type=int, default=0, metavar="N", help="conditional GANs: `ragan generate --add-rare N` layouts"
    )
    parser.add_argument(
        "--shares",
        default="0,25,50,75,100",
        help="synthetic percentages of each U-Net batch; without 0 (the real cases alone, which an earlier run with "
        "the same U-Net seeds has measured: the U-Net runs repeat exactly) nothing is compared with it",
    )
    parser.add_argument(
        "--keep-agreeing",
        type=int,
        default=0,
        metavar="K",
        help="train the mixed arms on the K of the --count synthetic pairs that agree best with the real-alone "
        "network's segmentation (0: all pairs; needs share 0, whose network checks the pairs)",
    )
    args = parser.parse_args()
    shares = sorted(int(s) for s in args.shares.split(","))  # 0 first: with --keep-agreeing its network checks pairs
    if not shares or any(not 0 <= s <= 100 for s in shares):
        parser.error("--shares must be percentages in 0..100")
    if not 0 <= args.keep_agreeing < args.count:
        parser.error(f"--keep-agreeing must be below --count ({args.count}): it keeps a part of the sampled pairs")
    if args.keep_agreeing and 0 not in shares:
        parser.error("--keep-agreeing needs share 0 in --shares: the real-alone network checks the synthetic pairs")
    try:  # a wrong option is refused now, not after the cases are written
        options = train_options(args.train_option)
        gan_spec(Path("phantom"), args.gan_steps, 0, options)
    except BadInput as error:
        parser.error(str(error))
    suffix = f"-{args.tag}" if args.tag else ""
    work = args.work / (args.tag or "default")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def stage(message: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {message}", flush=True)

    # Cases: training from seed 0, held out from seed 1 (phantom seeds 0.. and 1000..): never the same case.
    sets = {"train": args.train_cases, "held_out": args.held_out_cases}
    folders = {}
    for seed, (name, cases) in enumerate(sets.items()):
        folders[name] = work / f"{name}-{cases}"
        if not (folders[name] / "dataset.json").exists():
            phantom.write_dataset(folders[name], cases=cases, shape=SHAPE, seed=seed)

    models, timings = {}, {}
    for gan_seed in range(args.first_gan_seed, args.gan_seeds):
        spec = gan_spec(folders["train"], args.gan_steps, gan_seed, options)
        name = f"gan{suffix}-seed{gan_seed}"
        stage(f"training {name} ({args.gan_steps} steps, options {options or 'none'})")
        models[gan_seed], timings[name] = train_gan(name, spec, work)

    stage("sampling and reading slices")
    quiet = Reporter(stream=open(work / "prepare.log", "a"))
    synthetic = {}
    for gan_seed, model in models.items():
        synthetic[gan_seed], space = sample_model(model, args.count, seed=SAMPLE_SEED, add_rare=args.add_rare)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        real = {key: read_set(folder, space, Path(scratch), key, quiet)[0] for key, folder in folders.items()}
    classes, names = len(space.values), list(space.names)

    stage("fidelity, diversity, memorisation, class shares")
    features = {key: slice_features(s.images, s.labels, classes)[0] for key, s in real.items()}
    training_share = class_pixel_counts(real["train"].labels, classes).sum(axis=0)
    quality = {}
    for gan_seed, slices in synthetic.items():
        memorised, _ = memorisation_figures(slices, real["train"], real["held_out"])
        share = class_pixel_counts(slices.labels, classes).sum(axis=0)
        quality[f"GAN seed {gan_seed}"] = {
            **fidelity(features["train"], slice_features(slices.images, slices.labels, classes)[0]),
            "ms_ssim": float(metrics.mean_pairwise_ms_ssim(slices.images)),
            "fine_detail": metrics.fine_detail_ratio(real["train"].images, slices.images),
            "memorised_share": memorised["share"],
            "class_shares": {n: float(s / share.sum()) for n, s in zip(names, share)},
            "class_intensity": class_intensity(slices, names),
        }
    quality["held-out real"] = {
        **fidelity(features["train"], features["held_out"]),
        "ms_ssim": float(metrics.mean_pairwise_ms_ssim(real["train"].images)),
        "fine_detail": metrics.fine_detail_ratio(real["train"].images, real["held_out"].images),
        "class_shares": {n: float(s / training_share.sum()) for n, s in zip(names, training_share)},
        "class_intensity": class_intensity(real["train"], names),
    }

    runs = {share: [] for share in shares}  # per share: one Dice result per (GAN seed, U-Net seed)
    checks = []  # with --keep-agreeing: the agreement figures per (U-Net seed, GAN seed)
    picture = preview.titled(
        [("real training slices (phantom CT, 64 px)", spread(real["train"], space.colors))]
        + [(f"synthetic, GAN seed {s}", spread(slices, space.colors)) for s, slices in synthetic.items()]
    )
    args.docs.mkdir(exist_ok=True)
    preview.save_png(picture, args.docs / f"benchmark-phantom{suffix}.png")
    for unet_seed in range(args.first_unet_seed, args.unet_seeds):
        protocol = downstream.UNetProtocol(steps=args.unet_steps, seed=unet_seed)
        kept = {}  # with --keep-agreeing: the pairs this U-Net seed's mixed arms train on, per GAN seed
        for share in shares:
            for gan_seed in list(synthetic)[:1] if share == 0 else list(synthetic):  # real alone needs no GAN
                stage(f"U-Net seed {unet_seed}: {share}% synthetic (GAN seed {gan_seed})")
                sources = [real["train"], kept[gan_seed] if share and args.keep_agreeing else synthetic[gan_seed]]
                clock = time.perf_counter()
                network = downstream.train_unet(sources, classes, protocol, mix=[100 - share, share])
                result = downstream.score_network(network, real["held_out"], classes)
                timings[f"unet {share}%"] = timings.get(f"unet {share}%", 0) + time.perf_counter() - clock
                runs[share].append({**result, "unet_seed": unet_seed, "gan_seed": gan_seed})
                if share == 0 and args.keep_agreeing:  # this network checks the synthetic pairs of the mixed arms
                    stage(f"U-Net seed {unet_seed}: keeping the {args.keep_agreeing} best-agreeing synthetic pairs")
                    parts = []
                    for seed, slices in synthetic.items():
                        kept[seed], scores, check = keep_agreeing(
                            network, slices, real["held_out"], args.keep_agreeing, names
                        )
                        checks.append({"unet_seed": unet_seed, "gan_seed": seed, **check})
                        parts += worst_agreeing(network, slices, scores, space.colors, f"GAN seed {seed}")
                    if unet_seed == args.first_unet_seed:
                        picture = preview.titled(parts)
                        preview.save_png(picture, args.docs / f"benchmark-phantom{suffix}-agreement.png")
        # The figures so far after every U-Net seed: a long run cut short still leaves its table.
        figures = results(args, options, quality, names, classes, runs, timings, unet_seed + 1, started, checks)
        (work / "figures.json").write_text(json.dumps(figures, indent=2))
        text = report(figures, suffix)
        (args.docs / f"benchmark-phantom{suffix}.md").write_text(text, encoding="utf-8")
        stage(f"U-Net seed {unet_seed} done; figures written")
    print(text)


def keep_agreeing(network, pairs, held_out, keep: int, names: list[str]):
    """The `keep` pairs whose image the checker network segments most like their label, the scores of all pairs,
    and figures of what was kept and what dropped, beside the held-out real slices' (how well a real image shows
    its label to the same network): score quantiles, each class's mean Dice and share of slices holding it."""
    dice = agreement.pair_dice(network, pairs, len(names))
    scores = agreement.agreement_scores(dice)
    chosen = agreement.best_agreeing(scores, keep)
    dropped = np.setdiff1d(np.arange(len(pairs)), chosen)
    figures = {
        "held-out real": score_figures(agreement.pair_dice(network, held_out, len(names)), held_out.labels, names),
        "kept": score_figures(dice[chosen], pairs.labels[chosen], names),
        "dropped": score_figures(dice[dropped], pairs.labels[dropped], names),
    }
    return agreement.subset(pairs, chosen), scores, figures


def score_figures(dice: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Agreement scores (median, 10th percentile, extremes) of a set of pairs from their per-class Dice rows; each
    class's mean Dice over the slices holding it (in the label or the segmentation), and the share of slices whose
    label holds it."""
    scores = agreement.agreement_scores(dice)
    present = ~np.isnan(dice)
    return {
        "pairs": len(scores),
        "score": {
            "median": float(np.median(scores)),
            "p10": float(np.percentile(scores, 10)),
            "min": float(scores.min()),
            "max": float(scores.max()),
        },
        "class_dice": {
            n: float(np.nanmean(dice[:, c])) if present[:, c].any() else None for c, n in enumerate(names[1:])
        },
        "slices_with_class": {n: float((labels == c).any(axis=(1, 2)).mean()) for c, n in enumerate(names) if c},
    }


def worst_agreeing(network, pairs, scores: np.ndarray, colors, title: str) -> list:
    """Picture parts: the worst-agreeing pairs (image, image with its label) and the checker's segmentation of them."""
    worst = np.argsort(scores, kind="stable")[:WORST_SHOWN]
    images = np.asarray(pairs.images[worst], np.float32)
    return [
        (
            f"{title}: the {WORST_SHOWN} worst-agreeing synthetic pairs (scores {scores[worst[0]]:.2f}.."
            f"{scores[worst[-1]]:.2f})",
            preview.grid(images, np.asarray(pairs.labels[worst]), colors),
        ),
        (
            "the checker network's segmentation of the same images",
            preview.grid(images, downstream.predict(network, images), colors),
        ),
    ]


def results(
    args, options: dict, quality: dict, names, classes: int, runs: dict, timings: dict, seeds_done, started, checks
):
    """The figures of the U-Net runs so far: Dice per share and class (mean ± sd), compared with the real cases."""
    dice = {}
    for share, found in runs.items():
        dice[share] = {names[c]: downstream.summary([r["per_class"][c] for r in found]) for c in range(1, classes)}
        dice[share]["mean foreground"] = downstream.summary([r["mean_foreground"] for r in found])
    comparisons = {
        share: {key: downstream.compare(dice[share][key], dice[0][key]) for key in dice[share]}
        for share in runs
        if share and 0 in runs
    }
    return {
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "docs")},
        "unet_seeds_done": seeds_done,
        "train_options": options,
        "quality": quality,
        "dice": {str(k): v for k, v in dice.items()},
        "comparisons": {str(k): v for k, v in comparisons.items()},
        "per_run": {  # every U-Net run's Dice, so that another run can be compared seed for seed
            str(share): [
                {"gan_seed": r["gan_seed"], "unet_seed": r["unet_seed"], "mean foreground": r["mean_foreground"]}
                | {names[c]: r["per_class"][c] for c in range(1, classes)}
                for r in found
            ]
            for share, found in runs.items()
        },
        "agreement": checks,
        "timings_s": {k: round(v) for k, v in timings.items()} | {"total": round(time.perf_counter() - started)},
    }


def report(figures: dict, suffix: str) -> str:
    settings, dice, comparisons = figures["settings"], figures["dice"], figures["comparisons"]
    keys = list(next(iter(dice.values())))
    command = "python benchmarks/phantom_arm.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in settings.items() if k not in ("train_option", "tag") and v
    )
    command += "".join(f" --train-option {o}" for o in settings["train_option"]) + (
        f" --tag {settings['tag']}" if settings["tag"] else ""
    )

    def cell(entry: dict) -> str:
        return f"{entry['mean']:.3f} ± {entry['sd']:.3f}"

    rare = f" (layouts with --add-rare {settings['add_rare']})" if settings.get("add_rare") else ""

    lines = [
        "# Benchmark: phantom arm" + (f" ({settings['tag']})" if settings["tag"] else ""),
        "",
        f"Made by `{command}` in {figures['timings_s']['total'] / 60:.0f} min. Phantom CT (64 px): "
        f"{settings['train_cases']} training cases, {settings['held_out_cases']} held-out cases from other seeds; "
        f"GAN with the demo's settings, {settings['gan_steps']} steps, extra training options "
        f"{figures['train_options'] or 'none'}, {settings['gan_seeds']} GAN seed(s), {settings['count']} synthetic "
        f"slices each{rare}; U-Net {settings['unet_steps']} steps per arm, {settings['unet_seeds']} U-Net seed(s)"
        + (
            f" (only {figures['unet_seeds_done']} done when the run was cut short)"
            if figures["unet_seeds_done"] < settings["unet_seeds"]
            else ""
        )
        + ". Dice per "
        "held-out case, averaged; mean ± sd over the runs (U-Net seeds x GAN seeds). The vessel is the thin class.",
        "",
        "| synthetic share of each U-Net batch | " + " | ".join(keys) + " | vs real alone (mean foreground) |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for share, entries in dice.items():
        versus = "-"
        if share in comparisons:
            found = comparisons[share]["mean foreground"]
            thin = comparisons[share][THIN_CLASS]
            versus = (
                f"{found['difference']:+.3f} (spread {found['spread']:.3f}): {found['verdict']}; "
                f"{THIN_CLASS} {thin['difference']:+.3f} (spread {thin['spread']:.3f}): {thin['verdict']}"
            )
        title = {"0": "0% (real cases alone)", "100": "100% (synthetic alone)"}.get(share, f"{share}%")
        lines.append(f"| {title} | " + " | ".join(cell(entries[k]) for k in keys) + f" | {versus} |")
    class_names = list(figures["quality"]["held-out real"]["class_shares"])
    lines += [
        "",
        "A difference is called better or worse only when it is larger than the spread (the root-sum-square of the two "
        "standard deviations); the goal is few real + synthetic better than few real alone, vessel included.",
        "",
        "| slices | Frechet distance | KID | MS-SSIM (diversity) | fine detail (x training) | memorised share | "
        + " | ".join(f"{n} pixel share" for n in class_names)
        + " |",
        "|---" * (6 + len(class_names)) + "|",
    ]
    for name, q in figures["quality"].items():
        memorised = f"{q['memorised_share']:.2%}" if "memorised_share" in q else "-"
        shares = " | ".join(f"{100 * q['class_shares'][n]:.2f}%" for n in class_names)
        title = "held-out real (floor; class shares: training)" if name == "held-out real" else f"synthetic, {name}"
        lines.append(
            f"| {title} | {q['frechet']:.2f} | {q['kid']:.3f} ± {q['kid_std']:.3f} | {q['ms_ssim']:.3f} | "
            f"{q['fine_detail']:.2f} | {memorised} | {shares} |"
        )
    lines += [
        "",
        "Frechet distance and KID over RaGAN's own slice features against the training slices; the held-out real row "
        "is what a perfect generator would reach. Fine detail: the mean square of each slice minus its 3x3 local mean, "
        "as a multiple of the training slices' (below 0.5: blurred; above 1.5: grainy). Class pixel shares: synthetic "
        "against the training slices'.",
        "",
        "| slices | " + " | ".join(f"{n} intensity, mean ± sd" for n in class_names) + " |",
        "|---" * (1 + len(class_names)) + "|",
    ]
    for name, q in figures["quality"].items():
        title = "real training slices" if name == "held-out real" else f"synthetic, {name}"
        found = q.get("class_intensity", {})
        lines.append(
            f"| {title} | "
            + " | ".join(f"{found[n]['mean']:+.3f} ± {found[n]['sd']:.3f}" if n in found else "-" for n in class_names)
            + " |"
        )
    lines += [
        "",
        "Each class's intensity (image units, about -1..1) over all its pixels: whether synthetic organs stand out "
        "from the body as much as real ones, and are as noisy.",
    ]
    if figures["agreement"]:
        lines += agreement_table(figures["agreement"], settings)
    lines += [
        "",
        "Time per part (s): " + ", ".join(f"{k} {v}" for k, v in figures["timings_s"].items()) + ".",
        "",
        f"![real against synthetic](benchmark-phantom{suffix}.png)",
        "",
    ]
    return "\n".join(lines)


def agreement_table(checks: list[dict], settings: dict) -> list[str]:
    """The label-agreement filter's figures: scores of the kept, dropped and held-out real pairs, and per class."""
    names = list(checks[0]["kept"]["class_dice"])
    lines = [
        "",
        f"Label-agreement filter: of {settings['count']} synthetic pairs per GAN, the {settings['keep_agreeing']} "
        "whose image the real-alone U-Net of that seed segments most like their label were kept for its mixed arms. "
        "Score: the slice's mean Dice over the classes in its label or segmentation; median (10th percentile, "
        "extreme). Per class: mean Dice over the slices holding it (label or segmentation), kept / dropped / "
        "held-out real, and the share of slices whose label holds it, kept / dropped.",
        "",
        "| U-Net seed, GAN seed | held-out real: median (10th pct) | kept: median (10th pct, lowest) | dropped: median "
        "(highest) | "
        + " | ".join(f"{n} Dice, kept / dropped / real" for n in names)
        + " | "
        + " | ".join(f"slices with {n}, kept / dropped" for n in names)
        + " |",
        "|---" * (4 + 2 * len(names)) + "|",
    ]

    def dice(entry: dict, name: str) -> str:
        return "-" if entry["class_dice"][name] is None else f"{entry['class_dice'][name]:.2f}"

    for check in checks:
        real, kept, dropped = (check[k] for k in ("held-out real", "kept", "dropped"))
        lines.append(
            f"| {check['unet_seed']}, {check['gan_seed']} | "
            f"{real['score']['median']:.3f} ({real['score']['p10']:.3f}) | "
            f"{kept['score']['median']:.3f} ({kept['score']['p10']:.3f}, {kept['score']['min']:.3f}) | "
            f"{dropped['score']['median']:.3f} ({dropped['score']['max']:.3f}) | "
            + " | ".join(f"{dice(kept, n)} / {dice(dropped, n)} / {dice(real, n)}" for n in names)
            + " | "
            + " | ".join(f"{kept['slices_with_class'][n]:.0%} / {dropped['slices_with_class'][n]:.0%}" for n in names)
            + " |"
        )
    return lines


if __name__ == "__main__":
    main()
