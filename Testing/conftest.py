"""Fixtures of the RaGANLib tests; their helpers live in ragan_testing.py."""

import subprocess
from pathlib import Path

import pytest
from ragan_testing import AHEAD, SECRET, SECRET_FOLDER, TINY, phantom_pair, ragan, trained_ahead

from RaGANLib.data import phantom


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """Four small phantom CT cases as an nnU-Net v2 raw dataset."""
    return phantom.write_dataset(tmp_path_factory.mktemp("phantom") / "Dataset001_Phantom", cases=4, shape=(8, 64, 64))


@trained_ahead
def two_case_run(root: Path, phantom_dataset: Path) -> tuple[Path, subprocess.CompletedProcess, list]:
    """A tiny joint run on two phantom cases whose headers and folder name carry a patient's identity: (the folder
    holding the cases and `run/`, the finished `ragan train`, the (image, label) pairs). --label-name and
    --mixed-precision run too (on a CPU it trains in float32 and says so); no --score-every (the default): the model
    is the last step's, unscored. test_training.py checks this run and its model; test_faults_outputs.py generates
    from it and resumes copies of it (one training serves both). Never changed: copy it first."""
    pairs = [phantom_pair(root / SECRET_FOLDER, seed, PatientName=SECRET, PatientID=SECRET) for seed in range(2)]
    arguments = [a for image, label in pairs for a in ("--pair", image, label)]
    result = ragan("train", *arguments, "--label-name", "1=organ", "--mixed-precision", "--out", root / "run", *TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result, pairs


@pytest.fixture(scope="session", autouse=True)
def trainings_ahead(request, tmp_path_factory):
    """Start the trainings of the fixtures that the collected tests use (ragan_testing.Ahead), first needed first."""
    used = [name for item in request.session.items for name in item.fixturenames if name in AHEAD.trainings]
    names = list(dict.fromkeys(used))
    if names:
        AHEAD.start(names, tmp_path_factory.mktemp, request.getfixturevalue("phantom_dataset"))
    yield
    AHEAD.stop()
