"""What the trainer's Python offers (asked of a child `ragan info`, never by importing TensorFlow here), and
installing the trainer's requirements into Slicer's own Python on the user's explicit OK.

    job = environment_check(python)          # a TrainerJob; poll it like any other
    ...
    summary = describe_environment(job)      # "TensorFlow 2.21.0 on NVIDIA H100 (GPU)" or why not
"""

import importlib.metadata
import tempfile
from pathlib import Path

from RaGANModuleLib.trainer_job import JobState, TrainerJob, info_arguments

REQUIREMENTS = Path(__file__).resolve().parent.parent / "Resources" / "requirements.txt"
PROTECTED_PACKAGES = ("numpy", "SimpleITK", "vtk")  # Slicer's own: pip must never replace them


def environment_check(python: str, device: str = "auto", environment: dict | None = None) -> TrainerJob:
    """A started `ragan info` child; its `environment` event tells what TensorFlow and device it sees."""
    job = TrainerJob(info_arguments(), python=python, device=device, environment=environment, grace_s=2.0)
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


def constraints_file() -> Path:
    """A pip constraints file pinning Slicer's numpy, SimpleITK and vtk to the versions installed now."""
    lines = []
    for package in PROTECTED_PACKAGES:
        try:
            lines.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    path = Path(tempfile.mkdtemp(prefix="ragan-pip-")) / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def install_requirements(slicer_module, testing: bool = False) -> str:
    """Install Resources/requirements.txt into Slicer's Python: call only on the main thread, after the user's OK.

    `slicer_module` is the `slicer` package (passed in so this file imports without Slicer). Slicer 5.12 has
    `slicer.packaging.pip_ensure`; 5.10 has only `slicer.util.pip_install`. Skipped when testing.
    """
    if testing:
        return "skipped: Slicer runs in testing mode"
    constraints = constraints_file()
    packaging = getattr(slicer_module, "packaging", None)
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        requirements = packaging.load_requirements(str(REQUIREMENTS))
        try:  # the user has said OK in the module's own dialog: no second prompt
            packaging.pip_ensure(requirements, constraints=str(constraints), prompt_install=False, requester="RaGAN")
        except TypeError:  # a pip_ensure without these keywords
            packaging.pip_ensure(requirements, requester="RaGAN")
        return "requirements checked and installed with slicer.packaging.pip_ensure"
    slicer_module.util.pip_install(["-r", str(REQUIREMENTS), "-c", str(constraints)])
    return "requirements installed with slicer.util.pip_install"
