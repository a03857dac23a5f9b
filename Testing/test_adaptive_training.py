"""Augmentation in real training runs (the `ragan` command and the train step on phantom data).

The story: a run with adaptive augmentation (ADA) moves p by the documented step once per interval of images and
reports it in events, checkpoints and TensorBoard; killed at a checkpoint and resumed, it ends with exactly the
weights and p of an uninterrupted run; a checkpoint written before p was kept still resumes; the whole train step
compiles with XLA, and a tiny `ragan train --xla` runs to the end (ImageProjectiveTransformV3, which the warp used
before, has no XLA kernel)."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from ragan_testing import TINY_NETWORKS, events_of, ragan, read_until, start_ragan, trained_ahead

from RaGANLib.data.prepare import prepare
from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec
from RaGANLib.training import augment
from RaGANLib.training.checkpoints import checkpoint_digest
from RaGANLib.training.distributed import choose_strategy
from RaGANLib.training.losses import R1_INTERVAL
from RaGANLib.training.trainer import GanTrainer

STEPS, BATCH = 32, 4
OPTIONS = ["--size", "64", "--batch", BATCH, "--steps", STEPS, "--checkpoint-every", "16", "--log-every", "1"]
OPTIONS += ["--preview-every", "1000", "--lr", "0.0005", "--augment", "ada"]
OPTIONS += TINY_NETWORKS
QUIET = Reporter(stream=open(os.devnull, "w"))


def checkpoint_arrays(path) -> dict:
    with np.load(path) as stored:
        return {key: stored[key] for key in stored.files}


@trained_ahead
def straight_run(folder, phantom_dataset):
    """STEPS uninterrupted steps with adaptive augmentation."""
    run = folder / "run"
    result = ragan("train", "--dataset", phantom_dataset, "--out", run, *OPTIONS, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    return run, events_of(result.stdout)


def test_p_moves_once_per_interval_by_the_documented_step_and_is_reported(straight_run):
    run, events = straight_run
    p = [e["augment_p"] for e in events if e["event"] == "progress"]
    assert len(p) == STEPS and p[0] == 0.0
    interval = augment.ADA_INTERVAL_IMAGES // BATCH  # steps
    step_size = augment.ADA_INTERVAL_IMAGES / augment.ADA_SPEED_IMAGES
    for step, (before, after) in enumerate(zip([0.0, *p], p), start=1):
        if step % interval:
            assert after == before, f"p moved at step {step}, inside an interval"
        else:
            moves = (min(before + step_size, augment.ADA_MAX_P), max(before - step_size, 0.0))
            assert any(after == pytest.approx(move, abs=1e-4) for move in moves), (
                f"p at step {step}: {before} -> {after}"
            )
    assert p[-1] > 0  # this seeded run's discriminator soon tells its 4 cases' slices apart
    assert json.loads((run / "spec.json").read_text())["augment"] == "ada"
    stored = checkpoint_arrays(run / "checkpoints" / f"ckpt-{STEPS:08d}.npz")
    assert stored["augment/0000"] == pytest.approx(p[-1], abs=1e-4)
    logged = [
        float(tf.make_ndarray(value.tensor))
        for path in (run / "tensorboard").glob("events.out.tfevents.*")
        for record in tf.compat.v1.train.summary_iterator(str(path))
        for value in record.summary.value
        if value.tag == "augment/p"
    ]
    assert len(logged) == STEPS and logged[-1] == pytest.approx(p[-1], abs=1e-4)


@trained_ahead
def killed_and_resumed(folder, phantom_dataset):
    """The straight run's training killed at its checkpoint of step 16 and resumed: (its folder, the resume)."""
    run = folder / "run"
    process = start_ragan("train", "--dataset", phantom_dataset, "--out", run, *OPTIONS)
    try:
        read_until(process, lambda e: e["event"] == "checkpoint" and e["step"] == 16, timeout=400)
    finally:
        process.kill()
        process.wait(timeout=30)
    return run, ragan("train", "--resume", "--out", run, timeout=400)


def test_killed_and_resumed_ends_with_the_same_weights_and_p(straight_run, killed_and_resumed):
    run, resumed = killed_and_resumed
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert next(e for e in events_of(resumed.stdout) if e["event"] == "started")["step"] == 16

    expected = checkpoint_arrays(straight_run[0] / "checkpoints" / f"ckpt-{STEPS:08d}.npz")
    found = checkpoint_arrays(run / "checkpoints" / f"ckpt-{STEPS:08d}.npz")
    assert sorted(found) == sorted(expected)
    different = [key for key in expected if not np.array_equal(expected[key], found[key])]
    assert not different, f"the resumed run differs from the uninterrupted one in {different[:5]}"


def test_a_checkpoint_without_augmentation_state_resumes_with_p_from_zero(straight_run, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(straight_run[0], run)
    for path in (run / "checkpoints").glob("*.npz"):  # as RaGAN wrote them before p was kept
        arrays = {k: v for k, v in checkpoint_arrays(path).items() if not k.startswith("augment/") and k != "sha256"}
        np.savez(path, **arrays, sha256=np.array(checkpoint_digest(arrays)))
    result = ragan("train", "--resume", "--out", run, "--steps", STEPS + 2)
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    notices = [e["message"] for e in events if e["event"] == "notice"]
    assert any(f"'ckpt-{STEPS:08d}.npz' has no augmentation state: p starts from 0" in n for n in notices), notices
    assert next(e for e in events if e["event"] == "started")["step"] == STEPS
    assert [e["augment_p"] for e in events if e["event"] == "progress"] == [0.0, 0.0]


def test_the_whole_train_step_compiles_with_xla_and_updates_p_inside(phantom_dataset, tmp_path):
    """The conditional generator's options (their layers and loss terms, the segmenter of --seg-consistency) compile
    into the same XLA step. Steps 0, 4 and 8, those with the lazy R1 penalty: one trace and one XLA compilation for
    the step with and without R1 (a tf.cond inside), as in every run. Networks of width 4: compiling, not computing,
    is what is tested."""
    options = dict(mode="conditional", border_padding="reflect", pixel_noise=True, class_intensity=1.0)
    options |= dict(seg_consistency=1.0, width=4)
    spec = TrainSpec(dataset=str(phantom_dataset), size=64, batch=32, steps=20, augment="ada", xla=True, **options)
    data = prepare(spec, tmp_path / "cache", QUIET)
    trainer = GanTrainer(spec, data, choose_strategy(spec, QUIET), QUIET)
    batches = trainer.dataset(data, 0)
    seen = []
    for step in range(0, 9, R1_INTERVAL):
        batch = next(batches)
        losses = trainer.step(batch, step)
        seen.append(float(trainer.ada_sums[1].numpy()))
    assert all(np.isfinite(float(v)) for v in losses.values())
    # ADA's sums grow by a batch per step and restart once an interval is complete: its rule runs in the step.
    assert augment.ADA_INTERVAL_IMAGES == 2 * spec.batch and seen == [32.0, 0.0, 32.0]
    compiled = trainer._step  # traced once for steps with and without R1, lowered to XLA as a whole
    assert compiled.experimental_get_tracing_count() == 1
    assert "HloModule" in compiled.experimental_get_compiler_ir(batch, np.float32(0.9), np.bool_(True))(stage="hlo")
