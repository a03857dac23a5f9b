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

from RaGANLib import phantom  # noqa: E402
from RaGANLib.events import Reporter  # noqa: E402
from RaGANLib.prepare import prepare  # noqa: E402
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

    from RaGANLib.training import GanTrainer

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


def plain_keras_loop(trainer, spec: TrainSpec, steps: int) -> dict:
    """The same two networks (fresh weights) in the textbook loop: the speed without RaGAN's extras."""
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
    for number in range(steps + WARM_UP):
        if number == WARM_UP:
            began = time.perf_counter()
        loss = step(latents)
    float(loss)
    return {"images_per_s": steps * spec.batch / (time.perf_counter() - began)}


def generate_speed(trainer, count: int = 256) -> float:
    from RaGANLib.generate import sample

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
    args = parser.parse_args()

    import tensorflow as tf

    from RaGANLib.training import describe_device

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
                    row["plain"] = plain_keras_loop(trainer, dataclasses.replace(spec, xla=xla), args.steps)
                    row["generate_per_s"] = generate_speed(trainer)
                except Exception as error:  # noqa: BLE001 - a failing configuration is a figure of the benchmark
                    row["failed"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
                rows.append(row)
                print(format_row(row), flush=True)
    table = markdown(rows, device, tf.__version__, args)
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
