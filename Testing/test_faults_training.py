"""Fault injection for training: the faults a run meets in real life, on tiny phantom runs of the real `ragan` command.

Killed three times at random steps and resumed, a run ends with the very weights of an uninterrupted one. Damaged
checkpoints (truncated, empty, overwritten, silently changed) and a damaged slice cache are skipped or rebuilt with a
notice; changed input files are refused on resume unless accepted; a full disk, a stop while preparing, and a run
whose losses turn NaN each end with a readable event, the right exit code, and nothing half-written that is trusted.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from ragan_testing import REPOSITORY, TINY_NETWORKS, events_of, ragan, read_until, start_ragan, trained_ahead

from RaGANLib.data import phantom
from RaGANLib.data.inputs import file_hash
from RaGANLib.data.prepare import load_cache, prepare
from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec
from RaGANLib.training.checkpoints import checkpoint_digest

STEPS = 12
RUN = ["--size", "64", "--batch", "4", "--log-every", "1", "--preview-every", "1000", "--checkpoint-every", "2"]
RUN += TINY_NETWORKS
QUIET = Reporter(stream=open(os.devnull, "w"))


def checkpoint_arrays(path: Path) -> dict:
    with np.load(path) as stored:
        return {key: stored[key] for key in stored.files}


def notices(events: list[dict]) -> list[str]:
    return [e["message"] for e in events if e["event"] == "notice"]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def strict_json_lines(path: Path) -> list[dict]:
    def refuse(token):
        raise ValueError(f"{path} holds the non-JSON token {token}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@trained_ahead
def reference(folder, phantom_dataset) -> Path:
    """An uninterrupted run of STEPS steps on `dataset`: the weights every interrupted run must end with."""
    dataset = phantom.write_dataset(folder / "Dataset001_Phantom", cases=4, shape=(8, 64, 64))
    run = folder / "run"
    result = ragan("train", "--dataset", dataset, "--out", run, *RUN, "--steps", STEPS)
    assert result.returncode == 0, result.stdout + result.stderr
    return run


@pytest.fixture(scope="module")
def dataset(reference) -> Path:
    """Four phantom cases of this module's own (one test changes a file and puts it back), the reference's."""
    return reference.parent / "Dataset001_Phantom"


def assert_same_final_weights(run: Path, reference: Path) -> None:
    final, expected = (checkpoint_arrays(r / "checkpoints" / f"ckpt-{STEPS:08d}.npz") for r in (run, reference))
    assert sorted(final) == sorted(expected)
    for key in expected:
        assert np.array_equal(final[key], expected[key]), f"{key} differs from the uninterrupted run"


@trained_ahead
def killed_three_times(folder, phantom_dataset):
    """A run of STEPS steps on the phantom cases (the reference's, in another folder) killed with SIGKILL at three
    random steps, started again after each kill, then resumed to the end: (its folder, for each start the newest
    checkpoint before it and its `started` event, the last `ragan train`)."""
    run = folder / "run"
    kills = sorted(random.Random(8).sample(range(1, STEPS - 2), 3))
    starts = []
    for number, kill_at in enumerate(kills):
        newest = max((int(p.stem[5:]) for p in run.glob("checkpoints/ckpt-*.npz")), default=0)
        resume = ["--resume"] if number else []
        process = start_ragan("train", "--dataset", phantom_dataset, "--out", run, *RUN, "--steps", STEPS, *resume)
        try:
            seen = read_until(process, lambda e, at=kill_at: e["event"] == "progress" and e["step"] >= at)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        starts.append((newest, next(e for e in seen if e["event"] == "started")))
    return run, starts, ragan("train", "--resume", "--out", run)


def test_killed_three_times_at_random_steps_ends_with_the_weights_of_an_uninterrupted_run(
    killed_three_times, reference
):
    run, starts, result = killed_three_times
    assert len(starts) == 3
    for number, (newest, started) in enumerate(starts):
        assert started["step"] == newest and started["resumed"] is bool(number)
    assert result.returncode == 0, result.stdout + result.stderr
    assert events_of(result.stdout)[-1]["step"] == STEPS
    assert_same_final_weights(run, reference)


def test_damaged_checkpoints_and_cache_are_skipped_and_the_run_still_ends_exactly(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    checkpoints = run / "checkpoints"
    good = checkpoints / "ckpt-00000008.npz"  # the reference keeps 8, 10, 12
    data = (checkpoints / "ckpt-00000012.npz").read_bytes()
    (checkpoints / "ckpt-00000012.npz").write_bytes(data[: len(data) // 2])  # half-written
    overwritten = bytearray((checkpoints / "ckpt-00000010.npz").read_bytes())
    overwritten[len(overwritten) // 2 : len(overwritten) // 2 + 64] = bytes(64)
    (checkpoints / "ckpt-00000010.npz").write_bytes(bytes(overwritten))  # bytes overwritten on disk
    (checkpoints / "ckpt-00000014.npz").write_bytes(b"")  # zero bytes
    rotten = checkpoint_arrays(good)  # a valid file whose contents changed silently: only the SHA-256 tells
    rotten["step"] = np.array(16, dtype=np.int64)
    first_weight = next(k for k in rotten if k.startswith("generator/"))
    rotten[first_weight] = rotten[first_weight] + np.float32(1e-3)
    np.savez(checkpoints / "ckpt-00000016.npz", **rotten)
    damaged = {name: (checkpoints / name).read_bytes() for name in os.listdir(checkpoints) if name != good.name}
    images = run / "cache" / "images.npy"
    images.write_bytes(images.read_bytes()[:-100])  # the cache truncated, meta.json intact
    leftovers = [checkpoints / ".ckpt-00000018.npz.4242.tmp", run / "cache" / ".meta.json.4242.tmp"]
    leftovers.append(run / "previews" / ".preview_image.nrrd.tmp.nrrd")
    for path in leftovers:  # temp files of writes that a full disk or a kill interrupted
        path.write_bytes(b"x" * 1000)

    result = ragan("train", "--resume", "--out", run)
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    said = notices(events)
    for name, reason in (
        ("ckpt-00000016.npz", "SHA-256"),
        ("ckpt-00000014.npz", ""),
        ("ckpt-00000012.npz", ""),
        ("ckpt-00000010.npz", ""),
    ):
        assert any(name in m and reason in m and "older" in m for m in said), (name, said)
        assert (checkpoints / f"{name}.damaged").read_bytes() == damaged[name]  # kept aside, untouched
    assert any("images.npy" in m and "preparing it again" in m for m in said), said
    assert any("removed temporary files" in m for m in said), said
    assert not any(path.exists() for path in leftovers)
    assert next(e for e in events if e["event"] == "started")["step"] == 8
    assert_same_final_weights(run, reference)


def test_a_resume_after_the_inputs_changed_is_refused_unless_accepted(dataset, reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    label = sorted((dataset / "labelsTr").iterdir())[1]
    original = label.read_bytes()
    try:
        image = sitk.ReadImage(str(label))
        array = sitk.GetArrayFromImage(image)
        array[array == 2] = 1  # a corrected label: same grid, other content
        changed = sitk.GetImageFromArray(array)
        changed.CopyInformation(image)
        sitk.WriteImage(changed, str(label))
        before = files_of(run)

        refused = ragan("train", "--resume", "--out", run)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        error = events_of(refused.stdout)[-1]
        assert error["event"] == "error" and error["kind"] == "bad_input"
        assert str(label) in error["message"] and "--accept-changed-inputs" in error["message"]
        after = files_of(run)
        assert after.pop("lock") and before.pop("lock")  # the lock names its newest holder
        assert after == before  # nothing else in the run folder changed

        # Accepted: the cache is prepared again from the files as they are now; the training after that is an
        # ordinary resume, so the trainer is ended once it reports the prepared slices.
        accepted = start_ragan("train", "--resume", "--out", run, "--accept-changed-inputs")
        try:
            seen = read_until(accepted, lambda e: e["event"] in ("prepared", "error"))
        finally:
            accepted.kill()
            accepted.wait()
        assert seen[-1]["event"] == "prepared"
        assert any(str(label) in m and "preparing again" in m for m in notices(seen))
        meta = json.loads((run / "cache" / "meta.json").read_text())
        assert file_hash(label) in [label_hash for _, label_hash in meta["case_sha256"]]
    finally:
        label.write_bytes(original)


@trained_ahead
def diverging_runs(folder, phantom_dataset):
    """Two runs whose losses turn non-finite: --lr 0.5, a checkpoint every step (it diverges within a few steps), and
    --lr 1e30 (NaN at once): (the first's folder, the first and the second `ragan train`)."""
    run = folder / "run"
    options = [*RUN, "--steps", STEPS, "--checkpoint-every", "1", "--lr", "0.5"]
    result = ragan("train", "--dataset", phantom_dataset, "--out", run, *options)
    nan = ragan("train", "--dataset", phantom_dataset, "--out", folder / "nan", *RUN, "--steps", "3", "--lr", "1e30")
    return run, result, nan


def test_non_finite_weights_or_losses_stop_the_run_and_keep_the_last_good_checkpoint(diverging_runs):
    run, result, nan = diverging_runs
    assert result.returncode == 1, result.stdout + result.stderr
    error = events_of(result.stdout)[-1]
    assert error["event"] == "error" and error["kind"] == "diverged"
    assert "diverged at step" in error["message"] and "--lr" in error["message"]
    failed_at = int(error["message"].split("diverged at step ")[1].split(":")[0])
    kept = sorted((run / "checkpoints").glob("ckpt-*.npz"))
    assert kept and kept[-1].name in error["message"]
    assert not (run / "model").exists()
    for path in kept:  # only checkpoints from before, each whole and finite
        arrays = checkpoint_arrays(path)
        assert int(arrays["step"]) < failed_at
        assert str(arrays.pop("sha256")) == checkpoint_digest(arrays)
        assert all(np.all(np.isfinite(a)) for a in arrays.values())
    assert strict_json_lines(run / "events.jsonl")[-1] == error

    assert nan.returncode == 1 and "diverged at step 1: g_loss is nan" in events_of(nan.stdout)[-1]["message"]


def test_events_never_hold_nan_or_infinity_tokens(tmp_path):
    reporter = Reporter(json_lines=True, stream=open(tmp_path / "stdout", "w"))
    reporter.attach(tmp_path)
    reporter.emit("progress", step=1, total=2, images_per_s=1.0, losses={"d_loss": float("nan")}, eta_s=float("inf"))
    reporter.stream.close()
    for lines in (strict_json_lines(tmp_path / "events.jsonl"), strict_json_lines(tmp_path / "stdout")):
        assert lines[0]["losses"] == {"d_loss": None} and lines[0]["eta_s"] is None
    assert "d_loss nan" in (tmp_path / "train.log").read_text() and "ETA ?" in (tmp_path / "train.log").read_text()


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda c: (c / "images.npy").write_bytes((c / "images.npy").read_bytes()[:-1000]), "images.npy has"),
        (lambda c: (c / "labels.npy").unlink(), "labels.npy is missing"),
        (lambda c: flip_a_byte(c / "images.npy"), "images.npy does not match its SHA-256"),
        (lambda c: (c / "meta.json").write_text("{"), "meta.json"),
    ],
    ids=["truncated", "missing", "bit-rot", "meta-damaged"],
)
def test_a_damaged_cache_is_prepared_again_with_a_notice(tmp_path, damage, named):
    image, label = phantom_pair_files(tmp_path)
    spec = TrainSpec(pairs=[[str(image), str(label)]], size=64)
    first = prepare(spec, tmp_path / "cache", QUIET)
    expected = np.array(first.images), np.array(first.labels)
    del first
    damage(tmp_path / "cache")
    said = []

    class Collect(Reporter):
        def notice(self, message):
            said.append(message)

    assert load_cache(tmp_path / "cache", spec, Collect()) is None
    assert any(named in m and "preparing it again" in m for m in said), said
    again = prepare(spec, tmp_path / "cache", QUIET)
    assert np.array_equal(again.images, expected[0]) and np.array_equal(again.labels, expected[1])
    assert load_cache(tmp_path / "cache", spec, QUIET) is not None


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x40
    path.write_bytes(bytes(data))


def phantom_pair_files(folder: Path) -> tuple[Path, Path]:
    image, label = phantom.make_case(3, (8, 64, 64))
    paths = folder / "image.nrrd", folder / "label.nrrd"
    for array, path in zip((image, label), paths):
        volume = sitk.GetImageFromArray(array)
        volume.SetSpacing(phantom.SPACING)
        sitk.WriteImage(volume, str(path))
    return paths


def test_sigterm_while_preparing_stops_cleanly_and_leaves_no_trusted_cache(tmp_path):
    """Twenty larger cases (hard links of one) keep preparation busy long enough to be stopped while it writes."""
    image, label = phantom.make_case(5, (48, 256, 256))
    source = tmp_path / "source"
    pairs = []
    for role, array in (("image", image), ("label", label)):
        volume = sitk.GetImageFromArray(array)
        volume.SetSpacing(phantom.SPACING)
        sitk.WriteImage(volume, str(tmp_path / f"{role}.nrrd"))
    source.mkdir()
    for number in range(20):
        for role in ("image", "label"):
            os.link(tmp_path / f"{role}.nrrd", source / f"case{number:02d}_{role}.nrrd")
        pairs.append(f"case{number:02d}_image.nrrd,case{number:02d}_label.nrrd")
    (source / "pairs.csv").write_text("\n".join(pairs) + "\n")
    run = tmp_path / "run"

    process = start_ragan("train", "--pairs-file", source / "pairs.csv", "--out", run, *RUN, "--steps", STEPS)
    watchdog = threading.Timer(120, process.kill)  # a trainer that ignored the stop would hang the read below
    watchdog.start()
    try:
        while not (run / "cache" / "images.npy").exists():  # the cache is being written: preparation is half done
            assert process.poll() is None, "the trainer ended before writing its cache"
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        rest = events_of(process.stdout.read())
        assert process.wait(timeout=60) == 0
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
    assert rest[-1]["event"] == "finished" and rest[-1]["reason"] == "stopped" and rest[-1]["step"] == 0
    assert any("while preparing" in m for m in notices(rest))
    assert not (run / "cache" / "meta.json").exists()  # a cache without meta.json is never trusted...
    assert not list(run.glob("cache/*.npy"))  # ...and its partial files are gone
    assert not list(run.glob("checkpoints/*")) and not (run / "model").exists()


def mount_tmpfs(folder: Path, size: int) -> None:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a tmpfs of a chosen size: small_disk(bytes) -> folder."""
    mounts = []

    def make(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounts)}"
        mount_tmpfs(folder, size)
        mounts.append(folder)
        return folder

    yield make
    for folder in mounts:
        subprocess.run(["umount", str(folder)], check=True)


def assert_readable_disk_full(result: subprocess.CompletedProcess, disk: Path) -> dict:
    assert result.returncode == 1, result.stdout + result.stderr  # not 135 (SIGBUS), not a traceback
    assert "Traceback" not in result.stderr
    error = events_of(result.stdout)[-1]
    assert error["event"] == "error" and error["kind"] == "disk_full" and "MB free" in error["message"]
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
    return error


def test_a_full_disk_while_preparing_is_an_error_with_the_space_needed(dataset, small_disk):
    disk = small_disk(256 * 1024)  # the cache of all 32 slices needs about 400 kB
    result = ragan("train", "--dataset", dataset, "--out", disk / "run", *RUN, "--steps", STEPS, "--slices", "all")
    error = assert_readable_disk_full(result, disk)
    assert "slice cache" in error["message"] and "MB needed" in error["message"]
    assert not list(disk.glob("run/cache/*.npy"))  # the space is given back


def test_a_full_disk_at_a_checkpoint_keeps_the_last_good_one(dataset, reference, small_disk):
    checkpoint = (reference / "checkpoints" / f"ckpt-{STEPS:08d}.npz").stat().st_size
    disk = small_disk(int(checkpoint * 1.6) + (1 << 20))  # room for the cache and one checkpoint, not two
    run = disk / "run"
    result = ragan("train", "--dataset", dataset, "--out", run, *RUN, "--steps", STEPS)
    error = assert_readable_disk_full(result, disk)
    assert "ckpt-00000004.npz" in error["message"]
    kept = checkpoint_arrays(run / "checkpoints" / "ckpt-00000002.npz")
    assert int(kept["step"]) == 2 and str(kept.pop("sha256")) == checkpoint_digest(kept)


def test_preparing_a_ct_keeps_its_peak_memory_near_the_size_of_the_volume():
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    shape = (120, 256, 256)
    result = subprocess.run(
        [sys.executable, "Testing/prepare_peak_memory.py", *map(str, shape)],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    prepared, baseline = (float(line.split(": ")[1].split()[0]) for line in result.stdout.splitlines())
    volume_mb = np.prod(shape) * 2 / 2**20
    # Before: float32 and int64 copies made it about 12x the volume; now about 4x (int16 copy, label, slices).
    assert prepared - baseline < 7 * volume_mb, result.stdout


def test_a_run_folder_of_an_earlier_ragan_resumes_and_ends_exactly(reference, tmp_path):
    """RaGAN 0.1 wrote neither the run folder's marker nor checkpoint checksums: such a run still resumes."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / ".ragan.json").unlink()
    for path in (run / "checkpoints").glob("ckpt-*.npz"):
        if path.name == "ckpt-00000008.npz":
            arrays = checkpoint_arrays(path)
            del arrays["sha256"]
            np.savez(path, **arrays)
        else:
            path.unlink()

    result = ragan("train", "--resume", "--out", run)
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    assert next(e for e in events if e["event"] == "started")["step"] == 8
    assert any("ckpt-00000008.npz' has no checksum" in message for message in notices(events))
    assert json.loads((run / ".ragan.json").read_text())["kind"] == "run"
    assert_same_final_weights(run, reference)
