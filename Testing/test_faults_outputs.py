"""Fault injection: RaGAN never deletes or overwrites what it did not write, and cleans up after itself.

Each test points a real `ragan` command at a folder a user might have there (an nnU-Net dataset, notes, a file), or
breaks a command half-way (kill -9, Ctrl-C, a STOP file left from an earlier run), then checks the exit code, that the
message names the folder or file, and that every file the user had is byte-identical afterwards. One tiny model is
trained once for the whole module."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from ragan_testing import REPOSITORY, TINY, events_of, ragan

from RaGANLib.results.outputs import MARKER
from RaGANLib.results.synthetic import BATCH


def tree_hashes(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (its name relative to it) with the SHA-256 of its bytes."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        name = path.relative_to(folder).as_posix()
        found[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return found


def user_tree(folder: Path) -> Path:
    """What a user may have in a folder they point RaGAN at: their own nnU-Net dataset, their notes, a STOP note."""
    for name, text in {
        "nnunet/dataset.json": '{"labels": {"background": 0, "liver": 1}}',
        "nnunet/imagesTr/liver_001_0000.nii.gz": "expert scan",
        "nnunet/labelsTr/liver_001.nii.gz": "expert labels, three weeks of work",
        "synthetic_image.nrrd": "the user's own file of that name",
        "model/weights.h5": "another project's model",
        "spec.json": '{"mine": true}',
        "cache/meta.json": "{}",
        "STOP": "",
        "notes.txt": "do not lose",
    }.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def error_of(result: subprocess.CompletedProcess) -> str:
    events = events_of(result.stdout)
    assert events and events[-1]["event"] == "error", result.stdout + result.stderr
    return events[-1]["message"]


def staging_beside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


@pytest.fixture(scope="module")
def trained(two_case_run):
    """A tiny finished run (conftest.two_case_run, shared with test_training.py): (its run folder, its model folder,
    the phantom pairs it trained on)."""
    root, _, pairs = two_case_run
    return root / "run", root / "run" / "model", pairs


def copy_of_run(trained, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    (run / "lock").unlink()
    return run


# Item 1: generate writes only into a new, empty, or earlier generate folder.


def test_generate_refuses_a_folder_that_is_not_its_own_and_replaces_only_its_entries_in_its_own(trained, tmp_path):
    users = user_tree(tmp_path / "users")
    before = tree_hashes(tmp_path)

    refused = ragan("generate", trained[1], "--count", 3, "--out", users)

    assert refused.returncode == 2
    message = error_of(refused)
    assert str(users) in message and "'nnunet/'" in message and "'notes.txt'" in message
    assert tree_hashes(tmp_path) == before  # nothing added beside it either: no .users.partial

    out = tmp_path / "o"
    assert ragan("generate", trained[1], "--count", 3, "--seed", 1, "--out", out).returncode == 0
    first = tree_hashes(out)
    (out / "my notes.txt").write_text("mine")
    (out / "nnunet-mine").mkdir()
    (out / "nnunet-mine" / "case.nii.gz").write_text("mine too")
    mine = {k: v for k, v in tree_hashes(out).items() if k not in first}

    again = ragan("generate", trained[1], "--count", 5, "--seed", 2, "--out", out)

    assert again.returncode == 0, again.stdout + again.stderr
    after = tree_hashes(out)
    assert {k: after[k] for k in mine} == mine
    assert after["synthetic_image.nrrd"] != first["synthetic_image.nrrd"]
    assert len(list((out / "nnunet" / "imagesTr").iterdir())) == 5  # the earlier 3 cases were replaced, not added to
    assert staging_beside(out) == [] and staging_beside(users) == []


def test_generate_refuses_a_file_the_current_folder_and_a_run_folder_as_output(trained, tmp_path):
    a_file = tmp_path / "results.nrrd"
    a_file.write_text("a file")
    (tmp_path / "something.txt").write_text("the current folder is not empty")
    before = tree_hashes(tmp_path)

    as_file = ragan("generate", trained[1], "--out", a_file)
    command = [sys.executable, "-m", "RaGANLib", "generate", str(trained[1]), "--out", ".", "--events", "json"]
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    as_dot = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=environment)
    as_run = ragan("generate", trained[1], "--out", trained[0])

    assert as_file.returncode == 2 and str(a_file) in error_of(as_file) and "is a file" in error_of(as_file)
    assert as_dot.returncode == 2 and f"'{tmp_path}'" in error_of(as_dot) and "something.txt" in error_of(as_dot)
    assert as_run.returncode == 2 and "is a RaGAN run folder" in error_of(as_run)
    assert tree_hashes(tmp_path) == before


def test_a_failed_generate_leaves_nothing_and_a_killed_ones_leftovers_go_at_the_next_start(trained, tmp_path):
    out = tmp_path / "o"
    not_ours = tmp_path / f".o.partial-{os.getpid()}"  # looks like a staging folder, but has no marker
    not_ours.mkdir()
    (not_ours / "keep.txt").write_text("a user's folder with an odd name")
    before = tree_hashes(tmp_path)

    for stop in (signal.SIGINT, signal.SIGKILL):  # Ctrl-C: cleaned up at once; kill -9: at the next start
        process = subprocess.Popen(
            [sys.executable, "-m", "RaGANLib", "generate", trained[1], "--count", "3000", "--out", out],
            cwd=REPOSITORY,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Ctrl-C reaches a program only where SIGINT is not ignored, and a shell without job control ignores it
            # in the jobs it starts in the background (a CI runner may): give the child the default disposition.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 120
        while not any((p / ".synthetic_image.nrrd.tmp.nrrd").exists() for p in tmp_path.glob(".o.partial-*")):
            assert process.poll() is None and time.monotonic() < deadline, "generate ended before it was stopped"
            time.sleep(0.1)
        time.sleep(1)  # some slices in
        process.send_signal(stop)
        assert process.wait(timeout=60) != 0
        if stop == signal.SIGINT:
            assert tree_hashes(tmp_path) == before

    assert f".o.partial-{process.pid}" in staging_beside(out)  # what kill -9 left, marked as RaGAN's
    assert ragan("generate", trained[1], "--count", 2, "--out", out).returncode == 0
    assert staging_beside(out) == [not_ours.name]
    assert {k: v for k, v in tree_hashes(tmp_path).items() if k in before} == before


# Item 13: --count streams and is checked against the free space first.


def test_slice_i_is_the_same_whatever_the_count_and_chunking(trained, tmp_path):
    few, many = tmp_path / "few", tmp_path / "many"
    assert ragan("generate", trained[1], "--count", 3, "--seed", 5, "--out", few).returncode == 0
    assert ragan("generate", trained[1], "--count", BATCH + 5, "--seed", 5, "--out", many).returncode == 0
    for name in ("synthetic_image.nrrd", "synthetic_label.nrrd"):
        small = sitk.ReadImage(str(few / name))
        large = sitk.ReadImage(str(many / name))
        assert large.GetSize()[2] == BATCH + 5 and large.GetSpacing() == small.GetSpacing()
        assert np.array_equal(sitk.GetArrayFromImage(large)[:3], sitk.GetArrayFromImage(small))
    case = "imagesTr/synthetic_0002_0000.nii.gz"
    assert (few / "nnunet" / case).read_bytes() == (many / "nnunet" / case).read_bytes()


def test_a_count_that_does_not_fit_on_the_disk_is_refused_before_anything_is_written(trained, tmp_path):
    started = time.monotonic()
    result = ragan("generate", trained[1], "--count", 10**12, "--out", tmp_path / "o")

    assert result.returncode == 2
    message = error_of(result)
    assert "--count 1000000000000 needs up to" in message and "TB" in message and "free" in message
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - started < 60


# Item 2: train writes only into a new, empty, or RaGAN run folder; a STOP from an earlier run does not stop it.


def test_train_refuses_a_folder_that_is_not_a_run_folder_and_touches_nothing(trained, tmp_path):
    out = user_tree(tmp_path / "u")
    before = tree_hashes(tmp_path)
    pairs = [a for image, label in trained[2] for a in ("--pair", image, label)]

    result = ragan("train", *pairs, "--out", out, *TINY)
    as_file = ragan("train", *pairs, "--out", out / "notes.txt", *TINY)

    assert result.returncode == 2
    message = error_of(result)
    assert str(out) in message and "'model/'" in message and "not an earlier run folder" in message
    assert as_file.returncode == 2 and "notes.txt" in error_of(as_file) and "is a file" in error_of(as_file)
    assert tree_hashes(tmp_path) == before  # no lock, no spec.json, STOP still there


def test_a_spec_alone_in_its_folder_starts_a_run_there_and_stays_as_written(trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    image, label = trained[2][0]
    spec = {"pairs": [[os.path.relpath(image, run), os.path.relpath(label, run)]], "size": 64, "steps": 2}
    spec |= {"batch": 4, "checkpoint_every": 2, "preview_every": 2, "log_every": 1}
    (run / "spec.json").write_text(json.dumps(spec))
    before = (run / "spec.json").read_bytes()

    result = ragan("train", "--spec", run / "spec.json")

    assert result.returncode == 0, result.stdout + result.stderr
    assert (run / "spec.json").read_bytes() == before
    assert json.loads((run / MARKER).read_text())["kind"] == "run"
    assert (run / "model" / "generator.keras").is_file()


def test_a_stale_stop_does_not_stop_a_resume_and_a_killed_exports_leftovers_go(trained, tmp_path):
    run = copy_of_run(trained, tmp_path)
    stop = run / "STOP"
    stop.write_text("")
    an_hour_ago = time.time() - 3600
    os.utime(stop, (an_hour_ago, an_hour_ago))
    leftover = run / ".model.new-99999999"  # what a trainer killed while exporting leaves: marked, process gone
    leftover.mkdir()
    (leftover / MARKER).write_text(json.dumps({"kind": "staging", "host": os.uname().nodename, "pid": 99999999}))
    not_ours = run / ".model.old-12"
    not_ours.mkdir()
    (not_ours / "keep.txt").write_text("the user's")

    result = ragan("train", "--resume", "--out", run, "--steps", 8)

    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    assert events[-1]["event"] == "finished" and events[-1]["reason"] == "completed" and events[-1]["step"] == 8
    notices = " ".join(e.get("message", "") for e in events if e["event"] == "notice")
    assert "ignoring" in notices and "STOP" in notices
    assert not leftover.exists() and (not_ours / "keep.txt").read_text() == "the user's"


def test_a_stop_made_during_start_up_is_honoured(trained, tmp_path):
    run = copy_of_run(trained, tmp_path)
    command = [sys.executable, "-m", "RaGANLib", "train", "--resume", "--out", str(run), "--steps", "500"]
    process = subprocess.Popen(
        [*command, "--events", "json"], cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    (run / "STOP").touch()  # while the trainer is still importing TensorFlow
    output, _ = process.communicate(timeout=180)

    assert process.returncode == 0
    finished = [e for e in events_of(output) if e["event"] == "finished"]
    assert finished and finished[-1]["reason"] == "stopped" and finished[-1]["step"] == 7


def test_files_the_user_put_in_the_model_folder_are_not_replaced(trained, tmp_path):
    run = copy_of_run(trained, tmp_path)
    (run / "model" / "my notes.txt").write_text("which seed looked best")
    before = tree_hashes(run / "model")

    result = ragan("train", "--resume", "--out", run, "--steps", 8)

    assert result.returncode == 2
    message = error_of(result)
    assert str(run / "model") in message and "my notes.txt" in message
    assert tree_hashes(run / "model") == before
    assert [e["event"] for e in events_of(result.stdout)].count("progress") == 0  # refused before training


# The other commands that write.


@pytest.mark.parametrize("command", ["evaluate", "demo"])
def test_evaluate_and_demo_refuse_a_folder_that_is_not_their_own(command, trained, tmp_path):
    out = user_tree(tmp_path / "u")
    before = tree_hashes(tmp_path)
    if command == "evaluate":
        pairs = tmp_path / "pairs.csv"
        pairs.write_text("".join(f"{image},{label}\n" for image, label in trained[2]))
        before = tree_hashes(tmp_path)
        arguments = ["--synthetic", trained[1], "--real", pairs, "--held-out", pairs, "--count", 4]
    else:
        arguments = ["--steps", 1]

    result = ragan(command, *arguments, "--out", out)

    assert result.returncode == 2
    message = error_of(result)
    assert str(out) in message and "notes.txt" in message
    assert tree_hashes(tmp_path) == before
