"""Helpers of the RaGANLib tests: phantom data the project makes itself, the real scans beside the project (skipped
with a reason where absent), and a runner for the real `ragan` command in a subprocess."""

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RaGANLib.data import phantom

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RAGAN_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))

# A few steps on 64x64 slices: every event kind appears, and a run takes seconds on 2 CPU cores. The joint mode: its
# networks build in less time than the conditional mode's (20.9 s against 28.5 s of CPU time for such a run), and
# most tests check what both modes share; test_conditional.py gives `--mode conditional` after TINY (later flags win).
# Without the segmenter of --seg-consistency (on by default: a third more time per step and its own graph to build);
# the conditional fixtures, the float16, mirrored and XLA runs train with it. TINY_NETWORKS: the tests' other tiny
# runs take the same networks.
TINY_NETWORKS = ["--mode", "joint", "--seg-consistency", "0"]
TINY = ["--size", "64", "--steps", "6", "--batch", "4", "--checkpoint-every", "3", "--preview-every", "3"]
TINY += ["--log-every", "1", *TINY_NETWORKS]


# A patient's identity planted in the headers and the folder name of the shared run's cases (conftest.two_case_run).
SECRET = "DOE^JANE-0xSECRET"
SECRET_FOLDER = "patient_folder_0xSECRET"


def ragan(*args, timeout: float = 600, **popen) -> subprocess.CompletedProcess:
    """Run `python -m RaGANLib ARGS` to completion, with JSON events on stdout."""
    command = [sys.executable, "-m", "RaGANLib", *map(str, args)]
    if args and args[0] in ("train", "generate", "evaluate", "demo", "info") and "--events" not in args:
        command += ["--events", "json"]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPOSITORY, **popen)


def start_ragan(*args) -> subprocess.Popen:
    """Start `python -m RaGANLib ARGS --events json`; read its events with read_until."""
    command = [sys.executable, "-m", "RaGANLib", *map(str, args), "--events", "json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPOSITORY)


def read_until(process: subprocess.Popen, wanted, timeout: float = 600) -> list[dict]:
    """Events from a running command until one satisfies `wanted`."""
    seen, deadline = [], time.monotonic() + timeout
    for line in process.stdout:
        if line.startswith("{"):
            seen.append(json.loads(line))
            if wanted(seen[-1]):
                return seen
        assert time.monotonic() < deadline, "the command took too long"
    raise AssertionError(f"the command ended without the awaited event: {seen[-3:]}")


def events_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def write_volume(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), **meta) -> Path:
    """Write a [z, y, x] array as an image file; extra keyword arguments become header fields."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    for key, value in meta.items():
        image.SetMetaData(key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def phantom_pair(folder: Path, seed: int = 0, shape=(8, 64, 64), ending=".nrrd", **meta) -> tuple[Path, Path]:
    image, label = phantom.make_case(seed, shape)
    return (
        write_volume(folder / f"case{seed}_image{ending}", image, phantom.SPACING, **meta),
        write_volume(folder / f"case{seed}_label{ending}", label, phantom.SPACING, **meta),
    )


def shared_case_folder(name: str) -> Path:
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real scans '{folder}' are not present (set RAGAN_SHARED_DATA to the shared data folder)")
    return folder


class Ahead:
    """The fixtures' trainings, run WORKERS at a time in background threads from the start of the session while the
    tests before the first one that needs a run go on. A tiny `ragan` child keeps about one core busy (tracing is one
    Python thread), so on CI's two cores a fixture's training mostly costs no time; a test that needs a run not yet
    finished waits for it, and an assertion that failed in a training is raised in that test's setup. The trainings
    run niced: the test in the foreground keeps the CPU first (some tests time a stop), the trainings take the rest.
    Two at a time: with one, the foreground waited about 2.5 minutes in all for runs not yet done while a core idled."""

    WORKERS = 2

    def __init__(self):
        self.trainings = {}  # fixture name -> training(folder, phantom_dataset)
        self.results: dict[str, Future] = {}
        self.executor = None

    def start(self, names: list[str], make_folder, phantom_dataset: Path) -> None:
        """Queue the trainings of the fixtures `names`, in that order (the order the tests first use them)."""
        self.executor = ThreadPoolExecutor(
            max_workers=self.WORKERS, thread_name_prefix="ragan-ahead", initializer=lower_priority
        )
        for name in names:
            self.results[name] = self.executor.submit(self.trainings[name], make_folder(name), phantom_dataset)

    def stop(self) -> None:
        if self.executor:
            self.executor.shutdown(wait=True, cancel_futures=True)


def lower_priority() -> None:
    """Nice the calling thread and so the processes it starts (Linux keeps a nice value per thread)."""
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


AHEAD = Ahead()


def trained_ahead(training):
    """A session fixture, named as `training`, whose value `training(folder, phantom_dataset)` returns; it runs in
    the background (Ahead) when a collected test uses the fixture. `training` makes its own inputs in its own new
    folder; its value is shared: tests copy a run before they change it."""
    name = training.__name__
    assert name not in AHEAD.trainings, f"two fixtures train ahead as '{name}'"
    AHEAD.trainings[name] = training

    @pytest.fixture(scope="session", name=name)
    def fixture(trainings_ahead):  # conftest.py: started by then
        return AHEAD.results[name].result()

    fixture.__doc__ = training.__doc__
    return fixture
