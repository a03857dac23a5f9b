"""Benchmark: the whole `ragan evaluate` protocol on the IBSI soft-tissue-sarcoma MR cases (../shared/data).

    .venv/bin/python benchmarks/ibsi_sts_mr.py --arms low --modes conditional --tag conditional-low
    .venv/bin/python benchmarks/ibsi_sts_mr.py --setting gpu --arms full          # the 35-case arm, on a GPU
    .venv/bin/python benchmarks/ibsi_sts_mr.py --setting smoke --arms low --modes conditional --docs /tmp/docs

Fixed split by case (below): 35 training cases, 14 held-out test cases, and 5 of the training cases as the
low-data set. Two arms, each run alone with --arms or both:
- `low`: per mode and GAN seed a `residual` GAN on the 5 cases; U-Nets trained on the 5 real cases alone (real-low)
  and on them with synthetic slices (--share percent of each batch, half by default);
- `full`: per mode and GAN seed a `residual` GAN on the 35 cases, and the `dcgan` baseline (joint mode); U-Nets on
  the 35 real cases (real-full) and on synthetic slices only.
Each U-Net arm runs once per U-Net seed and GAN seed: Dice on the tumour as mean ± sd over the runs, compared with
real-low or real-full by the phantom arm's spread rule (benchmarks/common.py). For every GAN: Frechet distance and
KID over RaGAN's features, diversity (MS-SSIM), memorisation (for a conditional GAN also of its layouts' training
slices moved alike: what the layouts alone carry over), the tumour's pixel share against the training slices', and
label agreement (the real-alone U-Net segments the synthetic images, scored against their labels, next to its
Dice on held-out real cases). Issue 9's goals are each met, not met, or not measured in the run.

Measured on this project's 2 CPU cores shared with other benchmarks: the 5-case conditional GAN of the "cpu" setting
(800 steps, niced behind other benchmarks) 70 min; earlier, joint mode on idle cores, the 35-case GANs (1,200 steps)
18 min each, the 5-case GAN 12 min, a U-Net arm of 500 steps 4 min. The smoke setting (64 px, 3 cases, 20 steps; it
proves the script runs, its figures mean nothing): the command above about 3 min (its GAN 1.4 min, mostly building
graphs, the rest 1.2 min); both arms and modes with 2 GAN seeds, 22 min up to the first U-Net seed's figures.

Writes docs/benchmark-ibsi-sts-mr[-TAG].md (one table, a column per mode; the figures so far before the first U-Net
and after every one, so a run cut short still leaves its table), docs/benchmark-ibsi-sts-mr[-TAG].png (real against
synthetic slices) and the figures, every run's included, as JSON in the work folder. GAN runs are kept in the work
folder, named by data, network, mode, options and seed, and reused (or resumed) when run again.
"""

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from common import SAMPLE_SEED, spread, train_gan, train_options  # noqa: E402

from RaGANLib.data.body import without_body  # noqa: E402
from RaGANLib.data.prepare import survey  # noqa: E402
from RaGANLib.errors import BadInput  # noqa: E402
from RaGANLib.events import Reporter  # noqa: E402
from RaGANLib.model.model_folder import training_labels  # noqa: E402
from RaGANLib.model.model_info import read_model_info  # noqa: E402
from RaGANLib.quality import downstream, metrics  # noqa: E402
from RaGANLib.quality.evaluate import fidelity, memorisation_figures, sample_model  # noqa: E402
from RaGANLib.quality.features import class_pixel_counts, slice_features  # noqa: E402
from RaGANLib.quality.slices import read_set  # noqa: E402
from RaGANLib.results import preview  # noqa: E402
from RaGANLib.results.layouts import moved_pairs  # noqa: E402
from RaGANLib.seeds import stream  # noqa: E402
from RaGANLib.spec import MODES, OLD_DEFAULTS, TrainSpec  # noqa: E402

TEST = [
    "STS_004", "STS_006", "STS_007", "STS_010", "STS_011", "STS_014", "STS_021",
    "STS_028", "STS_032", "STS_038", "STS_039", "STS_044", "STS_047", "STS_048",
]  # fmt: skip
LOW = ["STS_013", "STS_019", "STS_026", "STS_030", "STS_051"]  # 5 of the training cases
SETTINGS = {
    # GAN steps (35 cases, 5 cases), U-Net steps per arm, synthetic slices per model; batch 16 throughout.
    "cpu": {"size": 128, "gan_steps": 1200, "low_gan_steps": 800, "unet_steps": 500, "count": 800},
    "gpu": {"size": 128, "gan_steps": 20000, "low_gan_steps": 8000, "unet_steps": 3000, "count": 2000},
    # Every part on a few cases, to prove the script runs: 3 training cases (2 of them the low set), 2 test cases.
    "smoke": {"size": 64, "gan_steps": 20, "low_gan_steps": 20, "unet_steps": 20, "count": 32, "cases": [3, 2, 2]},
}
GAN_OPTIONS = {"batch": 16, "lr": 0.0002, "checkpoint_every": 200, "preview_every": 400, "log_every": 50}
FIXED_OPTIONS = {"pairs_file", "dataset", "pairs", "size", "spacing", "arch", "mode", "steps", "seed"}  # set per GAN
BASELINE = "dcgan"  # the baseline network, trained on the 35 cases in joint mode: its figures are a reference
ARMS = ("low", "full")
CASES_TITLE = {"low": "low-data cases", "full": "training cases"}  # what each arm's GANs learn from
# Issue 9's goals on this benchmark (each judged per mode on the means over the runs).
GOALS = {
    "frechet": 60.0,  # own-feature Frechet distance of the 35-case GAN, at most
    "ms_ssim": 0.05,  # the 35-case GAN's MS-SSIM within this of the real training slices'
    "memorised": 0.02,  # share of the 5-case GAN's slices flagged as copies, at most
    "low_gain": 0.06,  # 5 real + synthetic at least real-low + this
    "synthetic_vs_full": 0.95,  # synthetic only at least this x real-full
    "agreement": 0.8,  # label agreement on synthetic slices at least this x the same network's on held-out real ones
    "class_share": 0.5,  # every class's synthetic pixel share at least this x its training share
}


def steps_of(args) -> dict:
    """The setting's figures, with --gan-steps (when given) for the GANs of both arms."""
    setting = SETTINGS[args.setting]
    if args.gan_steps is None:
        return setting
    return setting | {"gan_steps": args.gan_steps, "low_gan_steps": args.gan_steps}


def split(cases: list[str], limit: list[int] | None) -> dict:
    """The case lists: 35 training cases, the 5 low-data ones among them, the 14 test cases; `limit` keeps only the
    first few of each (the smoke setting), the low cases first among the training ones."""
    train = [c for c in cases if c not in TEST]
    if len(cases) != 49 or len(train) != 35 or not set(LOW) <= set(train):
        raise BadInput(f"holds {len(cases)} STS_ cases, not the 49 IBSI STS cases of ../shared/data/README.md")
    if limit is None:
        return {"full": train, "low": LOW, "test": TEST}
    full, low, test = limit
    return {"full": (LOW + [c for c in train if c not in LOW])[:full], "low": LOW[:low], "test": TEST[:test]}


def write_pairs(data: Path, cases: list[str], path: Path) -> Path:
    lines = [f"{data / c / 'MR_T1_image.nii.gz'},{data / c / 'MR_T1_mask.nii.gz'},{c}" for c in cases]
    path.write_text("image,label,case\n" + "\n".join(lines) + "\n")
    return path


def gan_spec(pairs: Path, network: str, steps: int, seed: int, grid: dict, options: dict) -> TrainSpec:
    """The benchmark's training settings for one GAN (validated like a spec file): `network` is a mode, which trains
    the residual GAN with the --train-option values, or the dcgan baseline (joint mode, no options, the plain
    generator of spec versions before 4 and no segmenter term, as it was first measured)."""
    baseline = {"arch": BASELINE, "mode": "joint", **OLD_DEFAULTS[4], **OLD_DEFAULTS[5]}
    base = {"arch": "residual", "mode": network} if network in MODES else baseline
    spec = TrainSpec(pairs_file=str(pairs), steps=steps, seed=seed, **grid, **base, **GAN_OPTIONS)
    return TrainSpec.from_json({**spec.to_json(), **(options if network in MODES else {})}, "--train-option")


def run_name(arm: str, network: str, seed: int, options: dict) -> str:
    """A GAN run's folder name: everything that makes two runs differ, so that a run is reused only for the same."""
    arch = "residual" if network in MODES else BASELINE
    extra = "".join(f"-{k}={json.dumps(v, separators=(',', ':'))}" for k, v in sorted(options.items()))
    if network not in MODES:
        network, extra = "joint", ""
    return re.sub(r"[^\w.,=+-]", "", f"{arm}-{arch}-{network}{extra}-seed{seed}")


def real_arm(real, test, classes: int, protocol, synthetic: dict) -> dict:
    """A U-Net trained on real slices alone: its Dice on the held-out cases and its label agreement on each synthetic
    set (its segmentation of the synthetic images scored against their labels); one network for all of them."""
    model = downstream.train_unet([real], classes, protocol)
    result = downstream.dice_by_case(
        downstream.predict(model, test.images), np.asarray(test.labels), test.cases, classes
    )
    result["agreement"] = {
        key: downstream.dice_by_case(
            downstream.predict(model, slices.images), np.asarray(slices.labels), slices.cases, classes
        )
        for key, slices in synthetic.items()
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPOSITORY.parent / "shared" / "data" / "ibsi-sts-mr")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ragan-benchmark-ibsi-sts-mr")
    parser.add_argument("--docs", type=Path, default=REPOSITORY / "docs")
    parser.add_argument("--tag", default="", help="names the docs files, e.g. the modes and arms run")
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="cpu")
    parser.add_argument("--arms", default="low,full", help="low: the 5-case GANs and U-Nets; full: the 35-case ones")
    parser.add_argument("--modes", default="joint,conditional", help="the GAN modes compared, a column each")
    parser.add_argument("--train-option", action="append", default=[], metavar="KEY=VALUE", help="a spec option")
    parser.add_argument("--gan-seeds", type=int, default=1)
    parser.add_argument(
        "--first-gan-seed", type=int, default=0, help="start the GAN seeds here: a seed's own run beside an earlier one"
    )
    parser.add_argument(
        "--gan-steps", type=int, help="the GAN steps of every arm run (default: the setting's; a longer run resumes)"
    )
    parser.add_argument(
        "--share", type=int, default=50, help="percent of each batch that is synthetic in the low arm's mixed U-Net"
    )
    parser.add_argument("--unet-seeds", type=int, default=3)
    parser.add_argument(
        "--first-unet-seed", type=int, default=0, help="start the U-Net seeds here: add seeds to an earlier run's"
    )
    args = parser.parse_args()
    arms, modes = args.arms.split(","), args.modes.split(",")
    if not arms or not set(arms) <= set(ARMS) or len(set(arms)) < len(arms):
        parser.error(f"--arms must be one or both of {', '.join(ARMS)}, comma-separated")
    if not modes or not set(modes) <= set(MODES) or len(set(modes)) < len(modes):
        parser.error(f"--modes must be one or more of {', '.join(MODES)}, comma-separated")
    if not 0 <= args.first_gan_seed < args.gan_seeds or not 0 <= args.first_unet_seed < args.unet_seeds:
        parser.error("--first-gan-seed must be below --gan-seeds, and --first-unet-seed below --unet-seeds")
    if not 0 < args.share < 100 or (args.gan_steps is not None and args.gan_steps < 1):
        parser.error("--share must be a percentage in 1..99, and --gan-steps at least 1")
    setting = steps_of(args)
    try:  # a wrong option is refused now, not after the first GAN has trained
        options = train_options(args.train_option)
        if set(options) & FIXED_OPTIONS:
            raise BadInput(
                f"--train-option cannot set {', '.join(sorted(set(options) & FIXED_OPTIONS))}: the "
                "benchmark sets it (the mode with --modes)"
            )
        gan_spec(Path("pairs.csv"), modes[0], 1, 0, {}, options)
    except BadInput as error:
        parser.error(str(error))
    if not args.data.is_dir():
        parser.error(
            f"--data '{args.data}' is not a folder: the IBSI STS cases are described in ../shared/data/README.md"
        )
    try:
        cases = split(sorted(p.name for p in args.data.iterdir() if p.name.startswith("STS_")), setting.get("cases"))
    except BadInput as error:
        parser.error(f"--data '{args.data}' {error}")
    data, work = args.data.resolve(), args.work / args.setting
    work.mkdir(parents=True, exist_ok=True)
    pairs = {key: write_pairs(data, names, work / f"{key}.csv") for key, names in cases.items()}
    started = time.perf_counter()
    timings = {}

    def stage(message: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {message}", flush=True)

    # One grid for every model and set: the one training on all 35 cases would choose.
    quiet = Reporter(stream=open(work / "prepare.log", "a"))
    size = setting["size"]
    spacing = survey(TrainSpec(pairs_file=str(pairs["full"]), size=size), quiet).target
    stage(f"grid: {size} px of {spacing:.3f} mm")

    # GANs by (arm, network, seed); the network is a mode, or the dcgan baseline of the full arm.
    models = {}
    for arm in arms:
        steps = setting["low_gan_steps" if arm == "low" else "gan_steps"]
        for network in modes + ([BASELINE] if arm == "full" else []):
            for seed in range(args.first_gan_seed, args.gan_seeds):
                name = run_name(arm, network, seed, options)
                stage(f"training GAN {name} ({steps} steps)")
                spec = gan_spec(pairs[arm], network, steps, seed, {"size": size, "spacing": spacing}, options)
                models[arm, network, seed], timings[f"gan {name}"] = train_gan(name, spec, work)

    stage("sampling and reading slices")
    synthetic = {}
    for key, model in models.items():
        synthetic[key], space = sample_model(model, setting["count"], seed=SAMPLE_SEED)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        real = {key: read_set(pairs[key], space, Path(scratch), key, quiet)[0] for key in arms + ["test"]}
    classes, names = len(space.values), list(space.names)

    stage("fidelity, diversity, memorisation, class shares")
    features = {key: slice_features(s.images, s.labels, classes)[0] for key, s in real.items()}
    quality = {arm: {} for arm in arms}
    for (arm, network, seed), slices in synthetic.items():
        memorised, _ = memorisation_figures(slices, real[arm], real["test"])
        quality[arm][f"{network} seed {seed}"] = {
            **fidelity(features[arm], slice_features(slices.images, slices.labels, classes)[0]),
            "ms_ssim": float(metrics.mean_pairwise_ms_ssim(slices.images)),
            "fine_detail": metrics.fine_detail_ratio(real[arm].images, slices.images),
            "memorised_share": memorised["share"],
            "memorised_floor": memorisation_floor(models[arm, network, seed], real[arm], real["test"], len(slices)),
            "class_shares": class_shares(slices, names),
        }
    for arm in arms:  # what a perfect generator would reach: held-out real slices against the same training slices
        quality[arm]["real"] = {
            **fidelity(features[arm], features["test"]),
            "ms_ssim": float(metrics.mean_pairwise_ms_ssim(real[arm].images)),
            "fine_detail": metrics.fine_detail_ratio(real[arm].images, real["test"].images),
            "class_shares": class_shares(real[arm], names),
        }

    suffix = f"-{args.tag}" if args.tag else ""
    rows = [(f"real training slices (IBSI STS MR, {size} px)", spread(real[arms[-1]], space.colors))]
    rows += [
        (f"synthetic: {network} GAN on the {len(cases[arm])} {CASES_TITLE[arm]}", spread(slices, space.colors))
        for (arm, network, seed), slices in synthetic.items()
        if seed == args.first_gan_seed
    ]
    args.docs.mkdir(parents=True, exist_ok=True)
    preview.save_png(preview.titled(rows), args.docs / f"benchmark-ibsi-sts-mr{suffix}.png")

    # One entry per U-Net run: its arm, the GAN it used (if any), seeds, Dice or label agreement. Seeds added to an
    # earlier run's (--first-unet-seed) join the runs of the seeds before them.
    earlier = work / f"figures{suffix}.json"
    runs = []
    if args.first_unet_seed and earlier.exists():
        runs = [r for r in json.loads(earlier.read_text())["per_run"] if r["unet_seed"] < args.first_unet_seed]

    def write(seeds_done: int) -> str:
        """The figures so far, written before the first U-Net and after every one: a long run cut short (or killed)
        still leaves its table."""
        figures = results(args, arms, modes, options, cases, spacing, quality, runs, timings, seeds_done, started)
        (work / f"figures{suffix}.json").write_text(json.dumps(figures, indent=2))
        text = report(figures, suffix)
        (args.docs / f"benchmark-ibsi-sts-mr{suffix}.md").write_text(text, encoding="utf-8")
        return text

    write(args.first_unet_seed)
    for unet_seed in range(args.first_unet_seed, args.unet_seeds):
        protocol = downstream.UNetProtocol(steps=setting["unet_steps"], seed=unet_seed)
        for arm in arms:
            alone = "real-low" if arm == "low" else "real-full"
            stage(f"U-Net seed {unet_seed}: {alone}")
            clock = time.perf_counter()
            own = {key: slices for key, slices in synthetic.items() if key[0] == arm and key[1] in MODES}
            found = real_arm(real[arm], real["test"], classes, protocol, own)
            timings[f"unet {alone}"] = timings.get(f"unet {alone}", 0) + time.perf_counter() - clock
            runs.append(run_entry(alone, None, None, unet_seed, found, names))
            for (_, network, gan_seed), result in found["agreement"].items():
                runs.append(run_entry(f"agreement {arm}", network, gan_seed, unet_seed, result, names))
            write(unet_seed)
            for (source, network, gan_seed), slices in synthetic.items():
                if source != arm:
                    continue
                mixed = "low+synthetic" if arm == "low" else "synthetic"
                stage(f"U-Net seed {unet_seed}: {mixed} ({network} GAN seed {gan_seed})")
                clock = time.perf_counter()
                sources = [real["low"], slices] if arm == "low" else [slices]
                mix = [100 - args.share, args.share] if arm == "low" else None
                result = downstream.run_arm(sources, real["test"], classes, protocol, mix=mix)
                timings[f"unet {mixed}"] = timings.get(f"unet {mixed}", 0) + time.perf_counter() - clock
                runs.append(run_entry(mixed, network, gan_seed, unet_seed, result, names))
                write(unet_seed)
        stage(f"U-Net seed {unet_seed} done; figures written")
    print(write(args.unet_seeds))


def memorisation_floor(model: Path, training, held_out, count: int) -> float | None:
    """A conditional GAN's floor for the memorisation check: the share flagged among its `count` layouts' source
    training slices, each moved by its layout's own move (docs/benchmark-ibsi-sts-mr-memorisation.md): what the
    layouts alone carry over from the patients. None for a GAN that draws its own labels, and where the model's
    label slices are not the training slices read here (another --train-option slices): no figure, not a wrong one."""
    description = read_model_info(model)
    if not description.conditional:
        return None
    labels = training_labels(model, description)
    labels = without_body(labels, len(description.classes))
    if not np.array_equal(labels, training.labels):
        return None
    moved = moved_pairs(labels, training.images, count, stream(SAMPLE_SEED, "layouts"))[0]
    return metrics.memorisation(moved, training.images, held_out.images)["share"]


def class_shares(slices, names: list[str]) -> dict:
    """Each class's share of the pixels of a set of slices."""
    counts = class_pixel_counts(slices.labels, len(names)).sum(axis=0)
    return {name: float(count / counts.sum()) for name, count in zip(names, counts)}


def run_entry(arm: str, network, gan_seed, unet_seed: int, result: dict, names: list[str]) -> dict:
    per_class = {names[c]: value for c, value in result["per_class"].items()}
    return {"arm": arm, "gan": network, "gan_seed": gan_seed, "unet_seed": unet_seed} | {
        "mean foreground": result["mean_foreground"],
        **per_class,
    }


def results(args, arms, modes, options, cases, spacing, quality, runs, timings, seeds_done, started) -> dict:
    """The figures of the U-Net runs so far: Dice (mean ± sd over U-Net x GAN seeds) per arm and GAN, the
    comparisons with the real cases alone, label agreement, and the goals."""
    dice = {}
    for run in runs:
        dice.setdefault(run["arm"], {}).setdefault(run["gan"] or "real", []).append(run["mean foreground"])
    dice = {arm: {gan: downstream.summary(values) for gan, values in found.items()} for arm, found in dice.items()}
    comparisons = {}
    for mixed, alone in (("low+synthetic", "real-low"), ("synthetic", "real-full")):
        if mixed in dice:
            comparisons[mixed] = {
                gan: downstream.compare(found, dice[alone]["real"]) for gan, found in dice[mixed].items()
            }
            for gan, found in comparisons[mixed].items():
                if min(dice[mixed][gan]["runs"], dice[alone]["real"]["runs"]) < 2:  # a spread of 0 says nothing
                    found["verdict"] += ", but one run: no spread known"
    figures = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "docs", "data")},
        **steps_of(args),
        "cases": {key: len(names) for key, names in cases.items()},
        "spacing_mm": spacing,
        "train_options": options,
        "unet_seeds_done": seeds_done,
        "quality": quality,
        "dice": dice,
        "comparisons": comparisons,
        "per_run": runs,
        "timings_s": {k: round(v) for k, v in timings.items()} | {"total": round(time.perf_counter() - started)},
    }
    figures["goals"] = goals(figures, arms, modes)
    return figures


def goals(figures: dict, arms: list[str], modes: list[str]) -> list[dict]:
    """Issue 9's goals, each per mode: "met: ..." or "not met: ..." with the figures that decide it (a Dice goal that
    the spread of the runs could tip either way says so), or "not measured in this run"."""
    dice, quality = figures["dice"], figures["quality"]

    def over_seeds(arm: str, mode: str, key: str) -> float:
        return float(np.mean([q[key] for name, q in quality[arm].items() if name.startswith(f"{mode} seed ")]))

    def frechet(mode: str):
        value = over_seeds("full", mode, "frechet")
        return value <= GOALS["frechet"], f"{value:.1f} (held-out real {quality['full']['real']['frechet']:.1f})"

    def ms_ssim(mode: str):
        value, real = over_seeds("full", mode, "ms_ssim"), quality["full"]["real"]["ms_ssim"]
        return abs(value - real) <= GOALS["ms_ssim"], f"{value:.3f} against real {real:.3f}"

    def memorised(mode: str):
        value = over_seeds("low", mode, "memorised_share")
        floors = [q.get("memorised_floor") for name, q in quality["low"].items() if name.startswith(f"{mode} seed ")]
        floor = f" (its layouts' training slices moved alike: {np.mean(floors):.2%})" if None not in floors else ""
        return value <= GOALS["memorised"], f"{value:.2%}{floor}"

    def dice_goal(mixed: str, alone: str, threshold, wording: str):
        def judge(mode: str):
            if mode not in dice.get(mixed, {}) or alone not in dice:
                return None
            arm, real = dice[mixed][mode], dice[alone]["real"]
            goal_value, spread_ = threshold(real["mean"]), float(np.hypot(arm["sd"], real["sd"]))
            text = f"{arm['mean']:.3f} against {wording} = {goal_value:.3f}"
            if 0 < abs(arm["mean"] - goal_value) <= spread_:
                text += f" (within the spread {spread_:.3f}: undecided)"
            elif min(arm["runs"], real["runs"]) < 2:
                text += " (one run: no spread known)"
            return arm["mean"] >= goal_value, text

        return judge

    def agreement(arm: str):
        def judge(mode: str):
            if f"real-{arm}" not in dice:
                return None
            synthetic, real = dice[f"agreement {arm}"][mode]["mean"], dice[f"real-{arm}"]["real"]["mean"]
            return synthetic >= GOALS["agreement"] * real, f"{synthetic:.3f} against {GOALS['agreement']} x {real:.3f}"

        return judge

    def class_share(arm: str):
        def judge(mode: str):
            training = quality[arm]["real"]["class_shares"]
            ratios = {
                (name, seed): q["class_shares"][name] / training[name]
                for seed, q in quality[arm].items()
                if seed.startswith(f"{mode} seed ")
                for name in list(training)[1:]
            }
            (name, _), lowest = min(ratios.items(), key=lambda item: item[1])
            return lowest >= GOALS["class_share"], f"lowest: {name} at {lowest:.2f} x its training share"

        return judge

    checks = [
        (f"Frechet (own features) of the 35-case GAN <= {GOALS['frechet']:.0f}", "full", frechet),
        (f"MS-SSIM of the 35-case GAN within {GOALS['ms_ssim']} of real", "full", ms_ssim),
        (f"5-case GAN memorised <= {GOALS['memorised']:.0%}", "low", memorised),
        (
            f"5 real + synthetic >= real-low + {GOALS['low_gain']} (mean over the runs)",
            "low",
            dice_goal(
                "low+synthetic", "real-low", lambda real: real + GOALS["low_gain"], f"real-low + {GOALS['low_gain']}"
            ),
        ),
        (
            f"synthetic only >= {GOALS['synthetic_vs_full']} x real-full",
            "full",
            dice_goal(
                "synthetic",
                "real-full",
                lambda real: GOALS["synthetic_vs_full"] * real,
                f"{GOALS['synthetic_vs_full']} x real-full",
            ),
        ),
    ]
    for arm, title in (("low", "5-case"), ("full", "35-case")):
        checks.append(
            (
                f"label agreement on the {title} GAN's slices >= {GOALS['agreement']} x on held-out real",
                arm,
                agreement(arm),
            )
        )
    for arm, title in (("low", "5-case"), ("full", "35-case")):
        checks.append(
            (
                f"every class of the {title} GAN >= {GOALS['class_share']} x its training pixel share",
                arm,
                class_share(arm),
            )
        )
    found = []
    for title, arm, judge in checks:
        entry = {"goal": title}
        for mode in modes:
            found_ = judge(mode) if arm in arms else None
            entry[mode] = (
                "not measured in this run" if found_ is None else ("met: " if found_[0] else "not met: ") + found_[1]
            )
        found.append(entry)
    return found


def report(figures: dict, suffix: str) -> str:
    settings, dice, quality = figures["settings"], figures["dice"], figures["quality"]
    modes, arms = settings["modes"].split(","), settings["arms"].split(",")
    command = "python benchmarks/ibsi_sts_mr.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in settings.items() if k != "train_option" and v not in ("", None, 0)
    )
    command += "".join(f" --train-option {o}" for o in settings["train_option"])
    done, planned = figures["unet_seeds_done"], settings["unet_seeds"]
    cases = figures["cases"]

    def cell(entry: dict | None) -> str:
        return "-" if entry is None else f"{entry['mean']:.3f} ± {entry['sd']:.3f} ({entry['runs']})"

    def versus(entry: dict | None) -> str:
        return (
            "-" if entry is None else f"{entry['difference']:+.3f} (spread {entry['spread']:.3f}): {entry['verdict']}"
        )

    first_gan = settings.get("first_gan_seed", 0)  # figures written before the option have none
    columns = ["real alone", *modes] + ([f"{BASELINE} baseline"] if "full" in arms else [])
    lines = [
        "# Benchmark: IBSI soft-tissue sarcoma MR (ibsi-sts-mr)" + (f", {suffix[1:]}" if suffix else ""),
        "",
        f"Made by `{command}` (this invocation {figures['timings_s']['total'] / 60:.0f} min; the time of each part, "
        f"GANs from their own records, at the end): setting `{settings['setting']}`, {figures['size']} px slices of "
        f"{figures['spacing_mm']:.3f} mm; GAN modes {', '.join(modes)} (`residual` network), extra training options "
        f"{figures['train_options'] or 'none'}; GANs "
        + " and ".join(
            f"{figures['low_gan_steps' if arm == 'low' else 'gan_steps']} steps on the {cases[arm]} {CASES_TITLE[arm]}"
            for arm in arms
        )
        + f" (batch 16, lr 2e-4), {settings['gan_seeds'] - first_gan} GAN seed(s)"
        + (f" (from seed {first_gan})" if first_gan else "")
        + f", {figures['count']} synthetic slices each; "
        f"U-Net {figures['unet_steps']} steps per arm, {planned} U-Net seed(s)"
        + (f" (only {done} complete when the run was cut short)" if done < planned else "")
        + f". Split by case, fixed in the script; {cases['test']} held-out test cases. Dice: the tumour (GTV, "
        "label 1), per held-out case, averaged; mean ± sd (runs: U-Net seeds x GAN seeds).",
        "",
        "| U-Net trained on | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    rows = []
    if "low" in arms:
        rows += [
            (
                f"{cases['low']} real cases; with synthetic slices from a GAN on them "
                f"({'half' if settings['share'] == 50 else str(settings['share']) + '%'} of each batch)",
                "real-low",
                "low+synthetic",
            ),
        ]
    if "full" in arms:
        rows += [(f"{cases['full']} real cases; synthetic slices only, from a GAN on them", "real-full", "synthetic")]
    for title, alone, mixed in rows:
        values = [cell(dice.get(alone, {}).get("real"))] + [cell(dice.get(mixed, {}).get(m)) for m in modes]
        comparisons = ["-"] + [versus(figures["comparisons"].get(mixed, {}).get(m)) for m in modes]
        if "full" in arms:
            values.append(cell(dice.get(mixed, {}).get(BASELINE)) if alone == "real-full" else "-")
            comparisons.append(
                versus(figures["comparisons"].get(mixed, {}).get(BASELINE)) if alone == "real-full" else "-"
            )
        lines.append(f"| {title} | " + " | ".join(values) + " |")
        lines.append(f"| ... against {alone} | " + " | ".join(comparisons) + " |")
    lines += [
        "",
        "A difference is called better or worse only when it is larger than the spread (the root-sum-square of the two "
        "standard deviations), as in the phantom arm.",
        "",
        "| synthetic slices of the GAN on | " + " | ".join(["held-out real (the floor)", *columns[1:]]) + " |",
        "|---" * len(columns) + "|---|",
    ]
    measures = [
        ("Frechet distance", "frechet", "{:.2f}"),
        ("KID", "kid", "{:.3f}"),
        ("MS-SSIM (diversity; real: the training slices)", "ms_ssim", "{:.3f}"),
        ("fine detail, x the training slices' (below 0.5: blurred; above 1.5: grainy)", "fine_detail", "{:.2f}"),
        ("memorised share", "memorised_share", "{:.2%}"),
        ("memorised share of its layouts' training slices, moved alike", "memorised_floor", "{:.2%}"),
    ]
    names = list(quality[arms[0]]["real"]["class_shares"])[1:]
    for arm in arms:
        title = f"the {cases[arm]} {CASES_TITLE[arm]}"
        gans = [m for m in columns[1:] if m in MODES] + ([BASELINE] if arm == "full" else [])
        for measure, key, form in measures:
            real = quality[arm]["real"].get(key)
            values = [form.format(real) if real is not None else "-"]
            values += [seeds_cell(quality[arm], g, lambda q, key=key: q.get(key), form) for g in gans]
            values += ["-"] * (len(columns) - len(values))
            lines.append(f"| {title}: {measure} | " + " | ".join(values) + " |")
        for name in names:
            values = [f"{quality[arm]['real']['class_shares'][name]:.2%} (training)"]
            values += [
                seeds_cell(quality[arm], g, lambda q, name=name: q["class_shares"][name], "{:.2%}") for g in gans
            ]
            values += ["-"] * (len(columns) - len(values))
            lines.append(f"| {title}: {name} pixel share | " + " | ".join(values) + " |")
        agreement = dice.get(f"agreement {arm}", {})
        values = [cell(dice.get(f"real-{arm}", {}).get("real"))] + [cell(agreement.get(m)) for m in modes]
        values += ["-"] * (len(columns) - len(values))
        lines.append(f"| {title}: label agreement (Dice of the real-{arm} U-Net) | " + " | ".join(values) + " |")
    lines += [
        "",
        "Frechet distance and KID over RaGAN's own slice features, against the GAN's training slices; the held-out "
        "real column is what a perfect generator would reach. Lower is closer. Memorised: the share of synthetic "
        "slices closer (NCC) to a training slice than 99% of held-out slices are; its layouts' training slices, "
        "moved alike (a conditional GAN): the same check on each layout's source training slice moved by the "
        "layout's own move, what the layouts alone carry over (docs/benchmark-ibsi-sts-mr-memorisation.md). "
        "Fine detail: the mean square of each slice minus its 3x3 local mean, as a multiple of the training slices' "
        "(RaGANLib/quality/metrics.py). Label agreement: the U-Net trained "
        "on the real cases alone segments the synthetic images, scored against their labels, next to its Dice on "
        "held-out real cases. Several GAN seeds: mean ± sd over them.",
        "",
        "| goal (issue 9) | " + " | ".join(modes) + " |",
        "|---" * (len(modes) + 1) + "|",
    ]
    lines += [f"| {g['goal']} | " + " | ".join(g[m] for m in modes) + " |" for g in figures["goals"]]
    lines += [
        "",
        "Time per part (s): " + ", ".join(f"{k} {v}" for k, v in figures["timings_s"].items()) + ".",
        "",
        f"![real against synthetic](benchmark-ibsi-sts-mr{suffix}.png)",
        "",
    ]
    return "\n".join(lines)


def seeds_cell(quality: dict, network: str, value, form: str) -> str:
    """A quality figure of one network over its GAN seeds: the value, or mean ± sd with several seeds."""
    values = [value(q) for name, q in quality.items() if name.startswith(f"{network} seed ")]
    if None in values:  # a figure this network has not (a joint GAN's layout floor)
        return "-"
    if len(values) == 1:
        return form.format(values[0])
    return f"{form.format(np.mean(values))} ± {form.format(np.std(values, ddof=1))}"


if __name__ == "__main__":
    main()
