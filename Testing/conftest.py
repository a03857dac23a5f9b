"""Fixtures of the RaGANLib tests; their helpers live in ragan_testing.py."""

from pathlib import Path

import pytest

from RaGANLib import phantom


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """Four small phantom CT cases as an nnU-Net v2 raw dataset."""
    return phantom.write_dataset(tmp_path_factory.mktemp("phantom") / "Dataset001_Phantom", cases=4, shape=(8, 64, 64))
