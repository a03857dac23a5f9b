"""Which Python, TensorFlow and Keras the trainer works with: the one statement that pyproject.toml, the Slicer
module's requirements.txt, its environment check and the model loader all follow. TensorFlow-free.

    problem = version_problem("keras", "3.12.0")    # None, or what is wrong in words
    problem = model_problem("3.15.1", "3.12.0")      # a model saved by a newer Keras than the one installed
"""

import re

# Lowest version allowed and first version refused, as (major, minor). TensorFlow 2.20 is the first that works with
# Slicer's numpy 2. Keras 3.15 is the lowest allowed because a model saved by Keras 3.15 does not load in 3.10-3.14:
# every Python that meets these pins can load every model another such Python made.
NEEDED = {
    "tensorflow": ((2, 20), (3, 0)),
    "keras": ((3, 15), (4, 0)),
}
PYTHON = (3, 10)  # the trainer's own code needs 3.10 (RaGAN's Slicer module needs Slicer 5.10+, Python 3.12)


def requirement(package: str) -> str:
    """The pip requirement for a package, as written in pyproject.toml and requirements.txt."""
    low, high = NEEDED[package]
    return f"{package}>={low[0]}.{low[1]},<{high[0]}"


def release(version: str) -> tuple[int, ...]:
    """(major, minor, ...) of a version string such as "2.21.0", "3.15.1rc1" or "3.16.0.dev2026"."""
    numbers = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(n) for n in numbers.group(0).split(".")) if numbers else ()


def version_problem(package: str, version: str | None) -> str | None:
    """None when `version` of `package` is allowed; else the problem and the fix, in words."""
    if not version:
        return f"{package} is not installed (RaGAN needs {requirement(package)})"
    low, high = NEEDED[package]
    found = release(version)[:2]
    if found < low:
        return f"{package} {version} is too old (RaGAN needs {requirement(package)})"
    if found >= high:
        return f"{package} {version} is newer than RaGAN supports (RaGAN needs {requirement(package)})"
    return None


def model_problem(saved_with: str | None, installed: str | None) -> str | None:
    """None when Keras `installed` can load a model saved by Keras `saved_with` (same or older major.minor); else
    what to install. A model without the version (or a Python whose Keras is unknown) is left to Keras to judge."""
    if not saved_with or not installed or release(saved_with)[:2] <= release(installed)[:2]:
        return None
    major, minor = release(saved_with)[:2]
    return (
        f"the model was saved with Keras {saved_with}, which Keras {installed} (in this Python) cannot load: "
        f'install keras>={major}.{minor} (pip install "keras>={major}.{minor}")'
    )
