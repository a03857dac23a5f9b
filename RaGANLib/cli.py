"""The `ragan` command: train, generate, evaluate, demo, info. Exit codes: 0 done or stopped, 2 bad input, 1 failure."""

import argparse
import contextlib
import dataclasses
import errno
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from RaGANLib import __version__
from RaGANLib.errors import BadInput, DiskFull, RaGANError
from RaGANLib.events import Reporter
from RaGANLib.spec import MAX_SEED, OLD_DEFAULTS, OPTIONS, PRESETS, TrainSpec, describe_option, flag_of, option_problem
from RaGANLib.training.runfolder import block_stop_signals

STARTED = time.time()  # when the command began: a STOP file older than that is from an earlier run
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter hides the messages that matter

# The spec options that have a flag of their own: a `--flag VALUE` (type, help and default from TrainSpec), or for a
# true/false option a `--flag` that sets it and a `--no-flag` that clears it.
FLAGGED = [name for name, field in OPTIONS.items() if field.metadata["flag"]]
SWITCHES = [name for name in FLAGGED if isinstance(OPTIONS[name].default, bool)]
TRAIN_OPTIONS = [name for name in FLAGGED if name not in SWITCHES]
FLAGS = {name: flag_of(name) for name in FLAGGED} | {"ct_window": "--ct-window", "label_names": "--label-name"}
MAX_EVALUATE_COUNT = 100_000  # the sampled slices and their features are held in memory
# Options whose default changed (spec versions 3 to 5): a run resumed by its flags keeps its own values of them
# unless a flag sets one, whatever today's default.
KEPT_ON_RESUME = tuple(name for values in OLD_DEFAULTS.values() for name in values)


def _add_events_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", choices=["text", "json"], default="text", help="json: one JSON event per line on stdout"
    )


def switch_help(name: str) -> str:
    """A true/false option's help, with its default: on or off."""
    return f"{OPTIONS[name].metadata['help']} (default {'on' if OPTIONS[name].default else 'off'})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ragan", description="Synthetic labelled scans from a few real ones.")
    parser.add_argument("--version", action="version", version=f"ragan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a GAN on labelled scans")
    source = train.add_argument_group("inputs (one of)")
    source.add_argument("--spec", type=Path, help="a spec.json; its folder is the run folder unless --out is given")
    source.add_argument("--dataset", type=Path, help="an nnU-Net v2 raw dataset folder")
    source.add_argument("--pairs-file", type=Path, help="CSV (image,label[,case]) or JSON list of pairs")
    source.add_argument("--pair", nargs=2, action="append", metavar=("IMAGE", "LABEL"), help="an image and its label")
    train.add_argument("--out", type=Path, help="run folder")
    train.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    train.add_argument(
        "--accept-changed-inputs",
        action="store_true",
        help="with --resume: the input files changed since the run was prepared; prepare again and train on them",
    )
    train.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="set "
        + ", ".join(sorted({o for values in PRESETS.values() for o in values}))
        + " as the Slicer panel's preset of this name does; flags given beside it win",
    )
    train.add_argument("--label-name", action="append", metavar="VALUE=NAME", default=[], help="name a label value")
    train.add_argument(
        "--ct-window", nargs=2, type=float, metavar=("LOW", "HIGH"), help=OPTIONS["ct_window"].metadata["help"]
    )
    for name in SWITCHES:
        train.add_argument(flag_of(name), action=argparse.BooleanOptionalAction, default=None, help=switch_help(name))
    for name in TRAIN_OPTIONS:
        train.add_argument(flag_of(name), type=OPTIONS[name].metadata["parse"], help=describe_option(name))
    _add_events_flag(train)

    generate = commands.add_parser("generate", help="write synthetic image + label pairs from a model folder")
    generate.add_argument("model", type=Path, help="model folder (a run's model/)")
    generate.add_argument(
        "--count",
        type=int,
        help="number of synthetic slices (default: a third of the training slices' number, so that they make a "
        "quarter of a training set with them: the share that helped on the phantom benchmark)",
    )
    generate.add_argument(
        "--labels",
        type=Path,
        help="conditional models: paint an image for every slice of these label volumes (a file, a folder of them, "
        "or an nnU-Net dataset's labelsTr) instead of --count slices",
    )
    generate.add_argument(
        "--seed", type=int, default=0, help=f"random seed, 0..{MAX_SEED}; the same seed gives the same output"
    )
    generate.add_argument(
        "--add-rare",
        type=int,
        default=0,
        metavar="N",
        help="conditional models: paste up to N more components of each rare or thin class (found from the training "
        "labels, e.g. lesions, vessels) into each moved layout, each taken from another training slice, turned and "
        "shifted a little, and placed only where the class that surrounded it is (a lesion inside the organ); "
        "default 0; recorded in generation.json",
    )
    generate.add_argument("--out", type=Path, required=True, help="output folder")
    _add_events_flag(generate)

    demo = commands.add_parser("demo", help="make phantom scans, train briefly, generate, write a preview")
    demo.add_argument("--out", type=Path, default=Path("ragan-demo"), help="demo folder (default ragan-demo)")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: a few minutes on 2 cores)")
    _add_events_flag(demo)

    evaluate = commands.add_parser("evaluate", help="measure synthetic slices against real ones; write a report")
    evaluate.add_argument("--synthetic", type=Path, required=True, help="a model folder, or synthetic cases (*)")
    evaluate.add_argument("--real", type=Path, required=True, help="the real training cases (*)")
    evaluate.add_argument("--held-out", type=Path, required=True, help="real cases not used in training (*)")
    evaluate.add_argument("--out", type=Path, required=True, help="report folder")
    evaluate.add_argument(
        "--count", type=int, default=1000, help=f"slices to sample from a model, 2..{MAX_EVALUATE_COUNT} (default 1000)"
    )
    evaluate.add_argument(
        "--seed", type=int, default=0, help="random seed of sampling, metrics and augmented real pairs (default 0)"
    )
    size = OPTIONS["size"].default
    evaluate.add_argument(
        "--size", type=int, default=size, help=f"slice size when --synthetic is cases (default {size})"
    )
    evaluate.add_argument("--downstream", action="store_true", help="also train and test a U-Net on each arm")
    evaluate.add_argument("--unet-steps", type=int, default=1500, help="U-Net steps per arm (default 1500)")
    evaluate.add_argument(
        "--unet-seeds",
        type=int,
        default=1,
        help="U-Net seeds per arm, 0..N-1: mean ± sd, and a verdict only beyond the spread (default 1; 3 to decide)",
    )
    evaluate.epilog = "(*) an nnU-Net dataset folder, a CSV/JSON pairs file, or a run's spec.json (its inputs)"
    _add_events_flag(evaluate)

    info = commands.add_parser("info", help="report TensorFlow and the device it sees")
    _add_events_flag(info)
    return parser


def spec_from_arguments(args) -> TrainSpec | None:
    """The spec the flags describe: a --spec file with flags overriding it, or the flags alone."""
    inputs = [args.dataset, args.pairs_file, args.pair]
    if args.spec and any(inputs):
        raise BadInput("give either --spec or --dataset/--pairs-file/--pair, not both")
    values = dict(PRESETS[args.preset]) if args.preset else {}
    for name in TRAIN_OPTIONS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    for name in SWITCHES:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.ct_window:
        values["ct_window"] = list(args.ct_window)
    for entry in args.label_name:
        value, _, name = entry.partition("=")
        if not value.strip().isdigit() or not name:
            raise BadInput(f"--label-name '{entry}' must look like VALUE=NAME, e.g. 1=liver")
        values.setdefault("label_names", {})[value.strip()] = name
    saved = args.out / "spec.json" if args.out else None
    if args.spec:
        spec = TrainSpec.load(args.spec)
    elif any(inputs):
        spec = TrainSpec(
            dataset=str(args.dataset.resolve()) if args.dataset else None,
            pairs_file=str(args.pairs_file.resolve()) if args.pairs_file else None,
            pairs=[[str(Path(i).resolve()), str(Path(label).resolve())] for i, label in (args.pair or [])],
        )
        if args.resume and saved and saved.exists():  # the run's own values of the options whose default changed
            run = TrainSpec.load(saved)
            values = {name: getattr(run, name) for name in KEPT_ON_RESUME} | values
    elif args.resume and saved and saved.exists():
        spec = TrainSpec.load(saved)
    elif args.resume:
        return None
    else:
        raise BadInput("nothing to train on: give --dataset, --pairs-file, --pair IMAGE LABEL or --spec")
    spec = dataclasses.replace(spec, **values)
    spec.validate("options", FLAGS)
    return spec


def check_sampling_options(args) -> None:
    """Refuse a --seed, --count or --size of generate and evaluate that cannot work, naming the flag."""
    problems = [("--seed", args.seed, option_problem("seed", args.seed))]
    if args.command == "evaluate":
        problems += [
            ("--size", args.size, option_problem("size", args.size)),
            (
                "--count",
                args.count,
                None if args.count <= MAX_EVALUATE_COUNT else f"must be at most {MAX_EVALUATE_COUNT}",
            ),
        ]
    for flag, value, problem in problems:
        if problem:
            raise BadInput(f"{flag} {problem}, got {value}")


def run_train(args, reporter: Reporter) -> dict:
    # Blocked before numpy starts its threads; train() unblocks them once its handlers are in place, this on any exit.
    block_stop_signals(True)
    try:
        from RaGANLib.training.trainer import train

        spec = spec_from_arguments(args)
        root = args.out or (args.spec.resolve().parent if args.spec else None)
        if root is None:
            raise BadInput("give the run folder with --out")
        return train(
            spec,
            root,
            reporter,
            resume=args.resume,
            accept_changed_inputs=args.accept_changed_inputs,
            spec_file=args.spec,
            started=STARTED,
        )
    finally:
        block_stop_signals(False)


def run_info(reporter: Reporter) -> dict:
    import platform

    try:
        import tensorflow as tf
    except ImportError as error:
        return reporter.emit(
            "environment",
            tensorflow=None,
            device=None,
            gpus=[],
            python=platform.python_version(),
            message=f"TensorFlow is not installed in this Python ({sys.executable}): {error}",
        )
    from RaGANLib.training.distributed import describe_device

    return reporter.emit(
        "environment",
        tensorflow=tf.__version__,
        device=describe_device(),
        gpus=[g.name for g in tf.config.list_physical_devices("GPU")],
        python=platform.python_version(),
        executable=sys.executable,
    )


def _disk_full(error: Exception, run_folder: Path | None) -> bool:
    """Whether a failure came from a full disk: an OSError says so; other writers (SimpleITK, Keras) fail with their
    own messages, so a run folder without space left is taken as the cause."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return run_folder is not None and shutil.disk_usage(run_folder).free < 1 << 20
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reporter = Reporter(json_lines=args.events == "json")
    try:
        if args.command == "train":
            run_train(args, reporter)
        elif args.command == "generate":
            from RaGANLib.results.generate import generate, generate_for_labels

            check_sampling_options(args)
            if args.labels and args.count is not None:
                raise BadInput("give --count or --labels, not both")
            if args.labels and args.add_rare:
                raise BadInput(
                    "--add-rare adds to the moved training layouts of --count; --labels paints yours as given"
                )
            if args.labels:
                generate_for_labels(args.model, args.labels, args.seed, args.out, reporter)
            else:
                generate(args.model, args.count, args.seed, args.out, reporter, args.add_rare)
        elif args.command == "demo":
            from RaGANLib.demo import run_demo

            run_demo(args.out, reporter, steps=args.steps)
        elif args.command == "evaluate":
            from RaGANLib.quality.downstream import UNetProtocol
            from RaGANLib.quality.evaluate import evaluate

            check_sampling_options(args)
            evaluate(
                args.synthetic,
                args.real,
                args.held_out,
                args.out,
                reporter,
                count=args.count,
                seed=args.seed,
                size=args.size,
                with_downstream=args.downstream,
                protocol=UNetProtocol(steps=args.unet_steps),
                unet_seeds=args.unet_seeds,
            )
        else:
            run_info(reporter)
    except RaGANError as error:
        reporter.emit("error", kind=error.kind, message=str(error))
        return error.exit_code
    except Exception as error:  # anything unforeseen is reported as an internal failure, with its trace in the log
        if _disk_full(error, reporter.run_folder):
            # A full disk while writing previews, the model or anything else that does not say so itself.
            where = Path(getattr(error, "filename", None) or reporter.run_folder)
            full = DiskFull.writing(where)
            reporter.emit("error", kind=full.kind, message=str(full))
            return full.exit_code
        reporter.emit("error", kind="internal", message=f"{type(error).__name__}: {error}")
        traceback.print_exc(file=sys.stderr)
        if reporter.run_folder is not None:
            with contextlib.suppress(OSError):
                reporter.log(traceback.format_exc())
        return 1
    return 0
