"""The Dockerfile stays in step with the install the README gives: the same setup script, a Python the project
supports, extras that exist, a non-root user, `ragan` as entry point, and commands in its usage lines that the
`ragan` command accepts. (No image is built here: these machines reach no container registry.)"""

import json
import re
import shlex
from pathlib import Path

import pytest

from RaGANLib.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()  # read with patterns: tomllib is not in Python 3.10


def instructions(name: str) -> list[str]:
    return re.findall(rf"^{name}\s+(.+)$", DOCKERFILE, flags=re.MULTILINE)


def test_the_image_uses_a_supported_python_and_the_readme_s_setup_script():
    python = re.search(r"^ARG PYTHON_VERSION=(3\.\d+)$", DOCKERFILE, flags=re.MULTILINE).group(1)
    minor = int(python.split(".")[1])
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    low, high = (int(m) for m in re.search(r"\(3, (\d+)\) <= sys.version_info\[:2\] <= \(3, (\d+)\)", setup).groups())
    assert low <= minor <= high
    assert f'requires-python = ">=3.{low},<3.{high + 1}"' in PYPROJECT
    assert [r for r in instructions("RUN") if "setup.sh" in r] == [
        "PYTHON=python3 bash scripts/setup.sh ${EXTRAS} && rm -rf /home/ragan/.cache/pip"
    ]


def test_the_gpu_build_argument_names_an_extra_of_the_project():
    extras = PYPROJECT.split("[project.optional-dependencies]")[1].split("\n[")[0]
    named = set(re.findall(r"--build-arg EXTRAS=(\w+)", DOCKERFILE))
    assert named == {"gpu"} and all(re.search(rf"^{n} = \[", extras, flags=re.MULTILINE) for n in named)


def test_ragan_runs_as_an_unprivileged_user():
    users = instructions("USER")
    assert users and all(u not in ("root", "0") for u in users)
    last_user = DOCKERFILE.rindex("\nUSER ")
    assert DOCKERFILE.index("scripts/setup.sh ${EXTRAS}") > last_user  # installed as that user too


@pytest.mark.parametrize(
    "line",
    [line for line in DOCKERFILE.splitlines() if line.startswith("#   docker run") and " ragan" in line],
)
def test_every_command_in_the_usage_lines_is_one_ragan_accepts(line):
    words = shlex.split(line[1:], comments=True)
    image = next(i for i, w in enumerate(words) if w.startswith("ragan"))
    arguments = words[image + 1 :]
    if arguments:
        build_parser().parse_args(arguments)  # exits (SystemExit) on an unknown command or flag


def test_entry_point_and_default_command_are_ragan_and_its_demo():
    assert instructions("ENTRYPOINT") == ['["ragan"]'] and 'ragan = "RaGANLib.cli:main"' in PYPROJECT
    default = json.loads(instructions("CMD")[0])
    assert build_parser().parse_args(default).command == "demo"


def test_the_build_context_leaves_out_environments_and_history():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)
