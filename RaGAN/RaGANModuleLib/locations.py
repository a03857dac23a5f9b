"""Where things are: the RaGANLib package the child runs, the user's RaGAN folder, and the Python that runs it."""

import os
import shutil
import sys
from pathlib import Path

MODULE_FOLDER = Path(__file__).resolve().parent.parent  # the folder that holds RaGAN.py


def ragan_lib_parent() -> Path:
    """The folder that holds the RaGANLib package: put it on the child's PYTHONPATH.

    An installed extension ships RaGANLib beside the module (qt-scripted-modules/RaGANLib); a source checkout has it
    one level up, beside the RaGAN/ module folder.
    """
    for candidate in (MODULE_FOLDER, MODULE_FOLDER.parent):
        if (candidate / "RaGANLib" / "__init__.py").is_file():
            return candidate
    raise FileNotFoundError(f"RaGANLib is neither in '{MODULE_FOLDER}' nor in '{MODULE_FOLDER.parent}'")


def import_ragan_lib() -> None:
    """Make `import RaGANLib` work in this Python (its TensorFlow-free parts: spec, nnU-Net writer, phantom)."""
    parent = str(ragan_lib_parent())
    if parent not in sys.path:
        sys.path.append(parent)


def default_output_folder() -> Path:
    """Runs and exports go to the user's RaGAN folder, which outlives the Slicer session (unlike a temp dir)."""
    return Path.home() / "RaGAN"


def new_run_folder(output_folder: Path, name: str = "run") -> Path:
    """A fresh run folder `<output>/<name>-NNN` that does not exist yet."""
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in output_folder.iterdir()}
    number = 1
    while f"{name}-{number:03d}" in taken:
        number += 1
    return output_folder / f"{name}-{number:03d}"


def slicer_python() -> str | None:
    """Slicer's own Python launcher (PythonSlicer) beside the running executable, or on PATH."""
    executable = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    for folder in (Path(sys.executable).parent, Path(sys.executable).parent.parent / "bin"):
        if (folder / executable).is_file():
            return str(folder / executable)
    return shutil.which(executable)
