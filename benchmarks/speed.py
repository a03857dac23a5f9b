"""Benchmark: how fast RaGAN trains, prepares and generates, against a plain Keras loop of the same two networks.

    .venv/bin/python benchmarks/speed.py                        # 64 and 128 px, with and without XLA
    .venv/bin/python benchmarks/speed.py --sizes 64 128 256 --steps 50 --markdown docs/benchmark-speed.md

Per slice size, in one process, on phantom CT cases made on the spot:
- prepare: slices per second and the process's peak resident memory after preparing (`prepare()`, cache written);
- RaGAN's train step (augmentation, lazy R1, EMA, hard labels, its tf.data input pipeline): images/s, with and
  without `--xla`, and the share of wall time spent waiting for the input pipeline;
- a plain Keras loop of the same generator and discriminator (non-saturating loss, Adam, no augmentation, no R1, no
  EMA, batches already on the device): images/s, the ceiling the extras cost against;
- generate: synthetic slices per second from the EMA generator.
Timings skip the first steps (graph tracing and compilation). Not a test: it prints figures and asserts nothing.
Wall-clock figures vary with the machine's load; run it on an idle machine and report the spread of a few runs.

    .venv/bin/python benchmarks/speed.py --breakdown --sizes 64 --steps 20 --repeats 5

--breakdown: where RaGAN's step loses time against the plain loop. RaGAN's step with one extra switched off at a
time (the input pipeline: one batch drawn once and reused; augmentation; R1; the EMA; hard synthetic labels), all
built once in one process and timed in turns, `--repeats` rounds: each variant's speed over the plain loop's of the
same round (a loaded machine slows all of a round alike), median and range over the rounds. The minibatch standard
deviation is part of the discriminator in both loops, so it is no extra. The training loop's own per-step
bookkeeping (stop file, stop flag) is timed apart, in microseconds per step.
"""

import argparse
import dataclasses
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from RaGANLib.data import phantom  # noqa: E402
from RaGANLib.data.prepare import prepare  # noqa: E402
from RaGANLib.events import Reporter  # noqa: E402
from RaGANLib.spec import TrainSpec  # noqa: E402

WARM_UP = 3


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def prepared(size: int, cases: int, work: Path, reporter: Reporter):
    dataset = phantom.write_dataset(work / f"phantom{size}", cases=cases, shape=(24, 2 * size, 2 * size))
    spec = TrainSpec(dataset=str(dataset), size=size, mode="joint")  # the plain loop below is a joint GAN's
    began = time.perf_counter()
    data = prepare(spec, work / f"cache{size}", reporter)
    seconds = time.perf_counter() - began
    return spec, data, {"slices": len(data.images), "slices_per_s": len(data.images) / seconds, "rss_mb": peak_rss_mb()}


def ragan_step(spec: TrainSpec, data, steps: int, xla: bool, reporter: Reporter) -> dict:
    import tensorflow as tf

    from RaGANLib.training.trainer import GanTrainer

    spec = dataclasses.replace(spec, xla=xla, steps=steps + WARM_UP)
    trainer = GanTrainer(spec, data, tf.distribute.get_strategy(), reporter)
    batches = trainer.dataset(data, 0)
    waiting, began = 0.0, None
    for step in range(steps + WARM_UP):
        if step == WARM_UP:
            waiting, began = 0.0, time.perf_counter()
        asked = time.perf_counter()
        batch = next(batches)
        waiting += time.perf_counter() - asked
        losses = trainer.step(batch, step)
    float(losses["d_loss"])  # wait for the last step
    seconds = time.perf_counter() - began
    return {"images_per_s": steps * spec.batch / seconds, "input_wait": waiting / seconds, "trainer": trainer}


def plain_keras_step(trainer, spec: TrainSpec):
    """The same two networks (fresh weights) in the textbook loop, the speed without RaGAN's extras: a function that
    runs it for a number of steps (after WARM_UP untimed ones) and returns its images/s."""
    import keras
    import tensorflow as tf

    generator = keras.models.clone_model(trainer.generator)
    discriminator = keras.models.clone_model(trainer.discriminator)
    g_optimizer = keras.optimizers.Adam(spec.lr, beta_1=0.0, beta_2=0.99)
    d_optimizer = keras.optimizers.Adam(spec.lr, beta_1=0.0, beta_2=0.99)
    classes = trainer.classes
    rng = np.random.default_rng(0)
    real = tf.constant(
        np.concatenate(
            [
                rng.uniform(-1, 1, (spec.batch, spec.size, spec.size, 1)),
                np.eye(classes)[rng.integers(0, classes, (spec.batch, spec.size, spec.size))],
            ],
            axis=-1,
        ),
        tf.float32,
    )

    @tf.function(jit_compile=spec.xla)
    def step(latents):
        with tf.GradientTape() as tape:
            fake = generator(latents[0], training=True)
            d_loss = tf.reduce_mean(
                tf.nn.softplus(discriminator(fake, training=True)) + tf.nn.softplus(-discriminator(real, training=True))
            )
        d_optimizer.apply(tape.gradient(d_loss, discriminator.trainable_variables), discriminator.trainable_variables)
        with tf.GradientTape() as tape:
            g_loss = tf.reduce_mean(tf.nn.softplus(-discriminator(generator(latents[1], training=True), training=True)))
        g_optimizer.apply(tape.gradient(g_loss, generator.trainable_variables), generator.trainable_variables)
        return d_loss

    latents = tf.constant(rng.standard_normal((2, spec.batch, trainer.latent_size)), tf.float32)

    def run(steps: int) -> float:
        for number in range(steps + WARM_UP):
            if number == WARM_UP:
                began = time.perf_counter()
            loss = step(latents)
        float(loss)
        return steps * spec.batch / (time.perf_counter() - began)

    return run


EXTRAS = ("input pipeline", "augmentation", "R1", "EMA", "hard labels")


def breakdown(spec: TrainSpec, data, steps: int, repeats: int, reporter: Reporter) -> dict:
    """Images/s ratios to the plain loop of RaGAN's step in full and with each extra switched off: per variant the
    list of per-round ratios."""
    import tensorflow as tf

    from RaGANLib.training.trainer import GanTrainer

    spec = dataclasses.replace(spec, steps=(steps + WARM_UP) * repeats)  # the steps each pipeline draws

    class Without(GanTrainer):
        """RaGAN's trainer with one extra switched off (the benchmark's only; training has no such switch)."""

        def __init__(self, extra: str | None):
            self.extra = extra
            augment = 0.0 if extra == "augmentation" else spec.augment
            super().__init__(dataclasses.replace(spec, augment=augment), data, tf.distribute.get_strategy(), reporter)

        def _fake_pair(self, latents, layouts):
            if self.extra == "hard labels" and layouts is None:
                return self.generator(latents, training=True)
            return super()._fake_pair(latents, layouts)

        def _update_ema(self, beta) -> None:
            if self.extra != "EMA":
                super()._update_ema(beta)

    variants = {"full": Without(None)} | {f"without {extra}": Without(extra) for extra in EXTRAS}
    pipelines = {name: trainer.dataset(data, 0) for name, trainer in variants.items()}
    fixed = next(pipelines["without input pipeline"])
    plain = plain_keras_step(variants["full"], spec)
    counters = dict.fromkeys(variants, 0)

    def timed(name: str) -> float:
        """Images/s of `steps` steps of one variant (after WARM_UP untimed ones)."""
        trainer = variants[name]
        for number in range(steps + WARM_UP):
            if number == WARM_UP:
                began = time.perf_counter()
            batch = fixed if name == "without input pipeline" else next(pipelines[name])
            step, counters[name] = counters[name], counters[name] + 1  # from 0: the warm-up traces the R1 step too
            losses = trainer.step(batch, 1 if name == "without R1" else step)  # step 1 never computes R1
        float(losses["d_loss"])
        return steps * spec.batch / (time.perf_counter() - began)

    ratios = {name: [] for name in variants}
    for _ in range(repeats):
        reference = plain(steps)
        for name in variants:
            ratios[name].append(timed(name) / reference)
    return ratios


def bookkeeping_us(work: Path) -> float:
    """Microseconds per step of the training loop's stop check (STOP file stat, stop flag)."""
    from RaGANLib.training.runfolder import RunFolder

    run = RunFolder(work, started=time.time())
    began = time.perf_counter()
    for _ in range(10_000):
        run.stop_requested()
    return (time.perf_counter() - began) / 10_000 * 1e6


def generate_speed(trainer, count: int = 256) -> float:
    from RaGANLib.results.synthetic import sample

    sample(trainer.ema, 32, 0, trainer.latent_size)  # trace once
    began = time.perf_counter()
    sample(trainer.ema, count, 1, trainer.latent_size)
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement (after 3 warm-up steps)")
    parser.add_argument("--cases", type=int, default=4, help="phantom cases to prepare per size")
    parser.add_argument("--xla", choices=["both", "off", "on"], default="both")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--breakdown", action="store_true", help="RaGAN's step without each extra in turn (XLA off)")
    parser.add_argument("--repeats", type=int, default=5, help="--breakdown: timing rounds")
    args = parser.parse_args()
    if args.breakdown:
        return main_breakdown(args)

    import tensorflow as tf

    from RaGANLib.training.distributed import describe_device

    device = describe_device()
    reporter = Reporter(stream=io.StringIO())  # the benchmark prints its own lines
    rows = []
    with tempfile.TemporaryDirectory(prefix="ragan-speed-") as work:
        for size in args.sizes:
            spec, data, preparation = prepared(size, args.cases, Path(work), reporter)
            print(f"{size} px: prepared {preparation['slices']} slices, {preparation['slices_per_s']:.0f} slices/s")
            for xla in {"both": (False, True), "off": (False,), "on": (True,)}[args.xla]:
                row = {"size": size, "xla": xla, "prepare": preparation}
                try:
                    measured = ragan_step(spec, data, args.steps, xla, reporter)
                    trainer = measured.pop("trainer")
                    row["ragan"] = measured
                    plain = plain_keras_step(trainer, dataclasses.replace(spec, xla=xla))
                    row["plain"] = {"images_per_s": plain(args.steps)}
                    row["generate_per_s"] = generate_speed(trainer)
                except Exception as error:  # noqa: BLE001 - a failing configuration is a figure of the benchmark
                    row["failed"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
                rows.append(row)
                print(format_row(row), flush=True)
    table = markdown(rows, device, tf.__version__, args)
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")


def main_breakdown(args) -> None:
    import tensorflow as tf

    from RaGANLib.training.distributed import describe_device

    reporter = Reporter(stream=io.StringIO())
    lines = [
        f"Device: {describe_device()}; TensorFlow {tf.__version__}; batch 16; XLA off; {args.steps} timed steps per "
        f"variant and round after {WARM_UP} warm-up steps, {args.repeats} rounds. Command: `python benchmarks/speed.py "
        f"--breakdown --sizes {' '.join(map(str, args.sizes))} --steps {args.steps} --repeats {args.repeats}`.",
        "",
        "| size | RaGAN's step | / plain Keras loop: median | range |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="ragan-speed-") as work:
        for size in args.sizes:
            spec, data, _ = prepared(size, args.cases, Path(work), reporter)
            for name, ratios in breakdown(spec, data, args.steps, args.repeats, reporter).items():
                lines.append(f"| {size} | {name} | {np.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |")
                print(lines[-1], flush=True)
        lines += ["", f"The training loop's stop check: {bookkeeping_us(Path(work)):.0f} microseconds per step."]
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")


def format_row(row: dict) -> str:
    head = f"{row['size']} px, XLA {'on' if row['xla'] else 'off'}: "
    if "failed" in row:
        return head + "failed: " + row["failed"]
    ragan, plain = row["ragan"], row["plain"]
    return (
        head + f"RaGAN {ragan['images_per_s']:.1f} img/s ({ragan['input_wait']:.0%} waiting for input), plain Keras "
        f"{plain['images_per_s']:.1f} img/s, ratio {ragan['images_per_s'] / plain['images_per_s']:.2f}; "
        f"generate {row['generate_per_s']:.0f} slices/s"
    )


def markdown(rows: list[dict], device: str, tf_version: str, args) -> str:
    lines = [
        "# Speed benchmark",
        "",
        f"Device: {device}; TensorFlow {tf_version}; batch 16; {args.steps} timed steps after {WARM_UP} warm-up steps; "
        f"phantom CT, {args.cases} cases per size. Command: `python benchmarks/speed.py --sizes "
        f"{' '.join(map(str, args.sizes))} --steps {args.steps} --cases {args.cases}`.",
        "",
        "| size | XLA | RaGAN step img/s | waiting for input | plain Keras img/s | RaGAN / plain | generate slices/s "
        "| prepare slices/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        prep = row["prepare"]
        head = f"| {row['size']} | {'on' if row['xla'] else 'off'} | "
        tail = f" | {prep['slices_per_s']:.0f} | {prep['rss_mb']:.0f} |"
        if "failed" in row:
            lines.append(head + f"failed: {row['failed']} | | | | " + tail)
            continue
        ragan, plain = row["ragan"], row["plain"]
        lines.append(
            head + f"{ragan['images_per_s']:.1f} | {ragan['input_wait']:.0%} | {plain['images_per_s']:.1f} | "
            f"{ragan['images_per_s'] / plain['images_per_s']:.2f} | {row['generate_per_s']:.0f}" + tail
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
