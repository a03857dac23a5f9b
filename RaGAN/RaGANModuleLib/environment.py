"""What the trainer's Python offers, never by importing TensorFlow here, and installing the trainer's requirements
into Slicer's own Python on the user's explicit OK.

    check = check_trainer_python(python)     # in a moment: installed TensorFlow/Keras versions against RaGAN's pins
    check.ready, check.reason                # Train is disabled with this reason when not ready
    job = environment_check(python)          # the full check (device, GPU): a `ragan info` TrainerJob to poll
    ...
    summary = describe_environment(job)      # "TensorFlow 2.21.0 on NVIDIA H100 (GPU)" or why not

A trainer command (`trainer_command("ssh gpu-box /opt/ragan/.venv/bin/python -m RaGANLib")`) replaces the local
Python: it is checked by running its `ragan info`.
"""

import contextlib
import dataclasses
import importlib
import importlib.metadata
import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from RaGANModuleLib.locations import import_ragan_lib
from RaGANModuleLib.trainer_job import JobState, TrainerJob, info_arguments

REQUIREMENTS = Path(__file__).resolve().parent.parent / "Resources" / "requirements.txt"
PROTECTED_PACKAGES = ("numpy", "SimpleITK", "vtk")  # Slicer's own: pip must never replace them

# Run by the trainer's Python: the installed versions from package metadata, without importing TensorFlow (which
# takes seconds), so the check costs one interpreter start.
PROBE = """
import importlib.metadata as metadata, json, platform, sys
def version(*names):
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return None
print(json.dumps({"python": platform.python_version(), "executable": sys.executable,
                  "tensorflow": version("tensorflow", "tensorflow-cpu"), "keras": version("keras")}))
"""
PROBE_TIMEOUT_S = 60.0  # a first start of a Python on a slow network drive can take this long


class TrainerNotReady(RuntimeError):
    """The trainer's Python cannot train or generate: raised before anything is written."""


@dataclasses.dataclass(frozen=True)
class TrainerCheck:
    """What `check_trainer_python` found: ready or not, why in words, and the versions the trainer's Python has."""

    ready: bool
    reason: str
    versions: dict


_checked: dict[tuple, TrainerCheck] = {}  # per Python (and its file's time): the check runs once per choice


def trainer_command(text: str | None) -> list[str]:
    """The trainer command typed in the Environment panel as an argument list ([]: none, the local Python trains).
    Split as a POSIX shell splits (quotes group words) but never run by a shell."""
    try:
        return shlex.split(text or "")
    except ValueError as error:
        raise TrainerNotReady(f"the trainer command cannot be read ({error}): {text}") from None


def check_trainer_python(
    python: str, environment: dict | None = None, refresh: bool = False, prefix: list[str] | None = None
) -> TrainerCheck:
    """Whether `python` has the TensorFlow and Keras RaGAN needs (RaGANLib.versions), asked of that Python by
    package metadata; cached until the Python changes or `refresh` (after an install). With a trainer command
    (`prefix`), its `ragan info` is asked instead (seconds: it imports TensorFlow, perhaps on another host)."""
    if prefix:
        key = (tuple(prefix), environment is None)
        if refresh or key not in _checked:
            _checked[key] = _probe_command(prefix, environment)
        return _checked[key]
    try:
        stamp = os.stat(python).st_mtime_ns
    except OSError:
        stamp = None
    paths = tuple((environment or {}).get(name) for name in ("PYTHONPATH", "PYTHONHOME"))  # what changes packages
    key = (python, stamp, environment is None, paths)
    if refresh or key not in _checked:
        _checked[key] = _probe(python, environment)
    return _checked[key]


def _probe(python: str, environment: dict | None) -> TrainerCheck:
    import_ragan_lib()
    from RaGANLib import versions as needed

    try:
        answer = subprocess.run(
            [python, "-c", PROBE],
            capture_output=True,
            text=True,
            env=environment,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
            creationflags=subprocess.CREATE_NO_WINDOW if os.name == "nt" else 0,  # no console window flashing up
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return TrainerCheck(False, f"the trainer's Python '{python}' cannot be started: {error}", {})
    try:
        found = json.loads(answer.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = (answer.stderr.strip().splitlines() or ["no answer"])[-1]
        return TrainerCheck(False, f"the trainer's Python '{python}' did not answer the check: {last}", {})
    problems = [needed.version_problem(p, found.get(p)) for p in needed.NEEDED]
    if needed.release(found.get("python", "")) < needed.PYTHON:
        problems.insert(0, f"Python {found.get('python')} is too old (RaGAN needs {'.'.join(map(str, needed.PYTHON))})")
    problems = [p for p in problems if p]
    if problems:
        reason = f"The trainer's Python ({found.get('executable') or python}): " + "; ".join(problems) + "."
        return TrainerCheck(False, reason, found)
    reason = f"TensorFlow {found['tensorflow']}, Keras {found['keras']}, Python {found['python']}"
    return TrainerCheck(True, reason, found)


def _probe_command(prefix: list[str], environment: dict | None) -> TrainerCheck:
    job = TrainerJob(info_arguments(), "", environment=environment, grace_s=2.0, prefix=prefix)
    job.start()
    job.wait(PROBE_TIMEOUT_S)
    if not job.state.final:
        job.kill()
    ready, reason = describe_environment(job)
    event = environment_event(job) or {}
    return TrainerCheck(ready, f"The trainer command ({shlex.join(prefix)}): {reason}", event)


def environment_check(
    python: str, device: str = "auto", environment: dict | None = None, prefix: list[str] | None = None
) -> TrainerJob:
    """A started `ragan info` child (of the trainer command `prefix` when given); its `environment` event tells
    what TensorFlow and device it sees."""
    job = TrainerJob(info_arguments(), python, device=device, environment=environment, grace_s=2.0, prefix=prefix)
    job.start()
    return job


def environment_event(job: TrainerJob) -> dict | None:
    return next((e for e in reversed(job.events) if e.get("event") == "environment"), None)


def describe_environment(job: TrainerJob) -> tuple[bool, str]:
    """(ready to train, one line for people) from a finished environment check."""
    event = environment_event(job)
    if job.state == JobState.FAILED or event is None:
        return False, f"the trainer's Python cannot run RaGAN: {job.message or 'no answer'}"
    if not event.get("tensorflow"):
        message = event.get("message") or "TensorFlow is not installed in this Python"
        return False, f"{message}. Install the requirements, or choose a Python that has TensorFlow."
    device = event.get("device") or "CPU"
    kind = "CPU" if device == "CPU" else "GPU"
    return True, f"TensorFlow {event['tensorflow']} on {device} ({kind}), Python {event.get('python', '?')}"


@contextlib.contextmanager
def constraints_file():
    """A pip constraints file pinning Slicer's numpy, SimpleITK and vtk to the versions installed now, in a
    temporary folder that is removed when pip is done."""
    lines = []
    for package in PROTECTED_PACKAGES:
        try:
            lines.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    with tempfile.TemporaryDirectory(prefix="ragan-pip-") as folder:
        path = Path(folder) / "constraints.txt"
        path.write_text("\n".join(lines) + "\n")
        yield path


def slicer_packaging():
    """Slicer's `slicer.packaging` module (Slicer 5.12 and later), or None where it does not exist (Slicer 5.10).

    It is a submodule that Slicer does not import at start-up, so it must be imported, not looked up on `slicer`."""
    try:
        return importlib.import_module("slicer.packaging")
    except ModuleNotFoundError as error:
        if error.name != "slicer.packaging":  # slicer.packaging exists but something it needs is missing
            raise
        return None


INSTALL_QUESTION = (
    "Install TensorFlow and Keras into Slicer's own Python? This downloads about 600 MB. Slicer's numpy, SimpleITK and "
    "vtk stay as they are. Alternatively, choose another Python that has TensorFlow."
)
INSTALL_HELP = (
    "pip's output is in Slicer's Python console (View > Python Console) and in the application log "
    "(Help > Report a bug shows where it is)."
)


def install_requirements(testing: bool = False, busy=contextlib.nullcontext) -> str:
    """Install Resources/requirements.txt into Slicer's Python: call only on the main thread, after the user's OK.

    Slicer 5.12+ installs with `slicer.packaging.pip_ensure`, which shows its own progress dialog with pip's log;
    Slicer 5.10 has only `slicer.util.pip_install`, run inside `busy()` (the panel's busy dialog). Skipped when
    testing. Returns one line for the panel."""
    if testing:
        return "skipped: Slicer runs in testing mode"
    packaging = slicer_packaging()
    with constraints_file() as constraints:  # both install calls block until pip is done
        if packaging is not None:
            requirements = packaging.load_requirements(str(REQUIREMENTS))
            packaging.pip_ensure(  # the user has said OK in the module's own dialog: no second prompt
                requirements, constraints=str(constraints), prompt_install=False, requester="RaGAN", show_progress=True
            )
            return "requirements checked and installed with slicer.packaging.pip_ensure"
        import slicer

        with busy():
            slicer.util.pip_install(["-r", str(REQUIREMENTS), "-c", str(constraints)])
    return "requirements installed with slicer.util.pip_install"
