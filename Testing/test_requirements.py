"""What the trainer needs is what the Slicer module offers to install: every dependency in pyproject.toml, except the
packages Slicer itself ships and must keep (numpy, SimpleITK), is in RaGAN/Resources/requirements.txt."""

import re

from ragan_testing import REPOSITORY

SLICER_PROVIDES = {"numpy", "simpleitk"}


def names(lines) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", line.strip().strip('",'), maxsplit=1)[0].lower() for line in lines if line.strip()}


def test_slicer_requirements_cover_the_trainers_dependencies():
    pyproject = (REPOSITORY / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.S | re.M).group(1)
    needed = names(block.splitlines()) - SLICER_PROVIDES
    requirements = (REPOSITORY / "RaGAN" / "Resources" / "requirements.txt").read_text().splitlines()
    offered = names(line for line in requirements if not line.startswith("#"))
    assert needed == {"tensorflow", "keras", "pillow", "tensorboard"}
    assert needed <= offered, f"missing from requirements.txt: {needed - offered}"


def test_pyproject_and_slicer_requirements_pin_what_ragan_lib_versions_states():
    from RaGANLib import versions

    pyproject = (REPOSITORY / "pyproject.toml").read_text()
    requirements = (REPOSITORY / "RaGAN" / "Resources" / "requirements.txt").read_text().splitlines()
    for package in versions.NEEDED:
        wanted = versions.requirement(package)
        assert f'"{wanted}"' in pyproject, f"pyproject.toml does not pin {wanted}"
        assert wanted in requirements, f"requirements.txt does not pin {wanted}"
    assert '"tensorflow[and-cuda]>=2.20,<3; ' in pyproject
