"""Controls for a benchmark's mixed arm: is its gain over the real cases alone due to the synthetic pairs, or would
other extra slices at the same share do as much?

    .venv/bin/python benchmarks/controls.py --work /tmp/ragan-benchmark-phantom/conditional --gan gan-seed0
    .venv/bin/python benchmarks/controls.py --work /tmp/ragan-benchmark-ibsi-sts-mr/cpu --train low.csv \
        --held-out test.csv --gan low-residual-conditional-seed0 --count 800 --share 50 --unet-steps 500

Reads a benchmark's work folder, a phantom arm's (benchmarks/phantom_arm.py: its train-N and held_out-M case sets,
the default) or the IBSI MR benchmark's (benchmarks/ibsi_sts_mr.py: --train low.csv --held-out test.csv, with its
--count, --share and U-Net steps), and a GAN run in it, and trains the same U-Net (same protocol, seeds and share) on
the real cases mixed with
    moved     the training cases' own slices moved by the conditional layouts' random elastic + affine moves, image and
              label alike (RaGANLib.results.layouts): what augmentation of the real pairs alone gives;
    shuffled  the GAN's synthetic images (sampled as both benchmarks sample them) with their labels shuffled among
              them: the same images, the pairs broken, so whether the images show their labels matters;
    moved+synthetic  half the share moved training slices, half the GAN's synthetic pairs: run it at --share 50
              against `moved` at --share 50 (the same real share, the other quarter moved slices) to see whether the
              synthetic pairs add anything on top of augmentation of the real pairs;
and prints Dice per class as mean ± sd over the U-Net seeds, as the benchmarks report their arms, with the figures as
JSON in the work folder (controls-KIND-SHARE.json, -rareN added with --add-rare N).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))


from common import SAMPLE_SEED  # noqa: E402

from RaGANLib.events import Reporter  # noqa: E402
from RaGANLib.quality import downstream  # noqa: E402
from RaGANLib.quality.evaluate import sample_model  # noqa: E402
from RaGANLib.quality.slices import SliceSet, read_set  # noqa: E402
from RaGANLib.results.layouts import moved_pairs  # noqa: E402

KINDS = ("moved", "shuffled", "moved+synthetic")


def control_sources(kind: str, train: SliceSet, synthetic: SliceSet, share: int, seed: int) -> tuple[list, list]:
    """The control's U-Net sources beside the real training slices, and each one's share of a batch (percent)."""
    if kind == "moved+synthetic":
        moved = control_slices("moved", train, synthetic, seed)
        return [train, moved, synthetic], [100 - share, share / 2, share / 2]
    return [train, control_slices(kind, train, synthetic, seed)], [100 - share, share]


def control_slices(kind: str, train: SliceSet, synthetic: SliceSet, seed: int) -> SliceSet:
    """The control's extra slices, as many as the GAN's sampled ones."""
    count, rng = len(synthetic), np.random.default_rng(seed)
    if kind == "moved":
        images, labels = moved_pairs(train.labels, train.images, count, rng)
        return SliceSet(images, labels.astype(np.uint8), np.arange(count))
    return SliceSet(synthetic.images, synthetic.labels[rng.permutation(count)], synthetic.cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a benchmark's work folder (phantom arm: WORK/TAG)")
    parser.add_argument("--train", default="train-*", help="the training cases in it: a folder or CSV (a glob)")
    parser.add_argument("--held-out", default="held_out-*", help="the held-out cases in it: a folder or CSV (a glob)")
    parser.add_argument("--gan", required=True, help="the GAN run's folder name in it, e.g. gan-seed0")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"controls to run, of {', '.join(KINDS)}")
    parser.add_argument("--count", type=int, default=400, help="synthetic slices sampled (phantom_arm's --count)")
    parser.add_argument("--add-rare", type=int, default=0, metavar="N", help="sample as phantom_arm --add-rare N")
    parser.add_argument("--share", type=int, default=25, help="percentage of each U-Net batch from the control")
    parser.add_argument("--unet-steps", type=int, default=600)
    parser.add_argument("--unet-seeds", type=int, default=3)
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if set(kinds) - set(KINDS):
        parser.error(f"--kinds must be among {', '.join(KINDS)}")
    sets = {"train": next(args.work.glob(args.train), None), "held_out": next(args.work.glob(args.held_out), None)}
    model = args.work / args.gan / "model"
    if None in sets.values() or not model.is_dir():
        parser.error(
            f"'{args.work}' needs {args.train}, {args.held_out} and {args.gan}/model/ (a benchmark's work folder)"
        )

    synthetic, space = sample_model(model, args.count, seed=SAMPLE_SEED, add_rare=args.add_rare)  # as the benchmarks
    quiet = Reporter(stream=open(args.work / "prepare.log", "a"))
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        real = {name: read_set(folder, space, Path(scratch), name, quiet)[0] for name, folder in sets.items()}
    classes, names = len(space.values), list(space.names)
    for kind in kinds:
        sources, mix = control_sources(kind, real["train"], synthetic, args.share, seed=7)
        runs = []
        for unet_seed in range(args.unet_seeds):
            protocol = downstream.UNetProtocol(steps=args.unet_steps, seed=unet_seed)
            network = downstream.train_unet(sources, classes, protocol, mix=mix)
            result = downstream.score_network(network, real["held_out"], classes)
            runs.append({"unet_seed": unet_seed, "mean foreground": result["mean_foreground"]})
            runs[-1] |= {names[c]: result["per_class"][c] for c in range(1, classes)}
            print(f"{kind}, U-Net seed {unet_seed}: {runs[-1]}", flush=True)
        figures = {key: downstream.summary([run[key] for run in runs]) for key in runs[0] if key != "unet_seed"}
        (args.work / f"controls-{kind}-{args.share}{f'-rare{args.add_rare}' if args.add_rare else ''}.json").write_text(
            json.dumps({"settings": vars(args) | {"work": str(args.work)}, "runs": runs, "dice": figures}, indent=2)
        )
        cells = ", ".join(f"{key} {f['mean']:.3f} ± {f['sd']:.3f}" for key, f in figures.items())
        print(f"{args.share}% {kind}: {cells}", flush=True)


if __name__ == "__main__":
    main()
