"""Installing the trainer's requirements into Slicer's Python: only on request, never in testing mode, and never
replacing Slicer's numpy, SimpleITK or vtk."""

import os
import sys
import types

from RaGANModuleLib import environment
from RaGANModuleLib.trainer_job import JobState, TrainerJob


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return args[0] if args else None


def pinned(path) -> dict[str, str]:
    return dict(line.split("==") for line in open(path).read().split())


def test_testing_mode_installs_nothing():
    pip_ensure, pip_install = Recorder(), Recorder()
    slicer = types.SimpleNamespace(
        packaging=types.SimpleNamespace(pip_ensure=pip_ensure, load_requirements=Recorder()),
        util=types.SimpleNamespace(pip_install=pip_install),
    )
    assert environment.install_requirements(slicer, testing=True).startswith("skipped")
    assert not pip_ensure.calls and not pip_install.calls


def test_slicer_5_12_uses_pip_ensure_with_the_requirements_file_and_protected_packages_pinned():
    pip_ensure, load_requirements = Recorder(), Recorder()
    slicer = types.SimpleNamespace(
        packaging=types.SimpleNamespace(pip_ensure=pip_ensure, load_requirements=load_requirements)
    )

    environment.install_requirements(slicer)

    assert load_requirements.calls[0][0] == (str(environment.REQUIREMENTS),)
    (requirements,), options = pip_ensure.calls[0]
    assert requirements == str(environment.REQUIREMENTS)  # what load_requirements returned
    import numpy
    import SimpleITK

    versions = pinned(options["constraints"])
    assert versions["numpy"] == numpy.__version__ and versions["SimpleITK"] == SimpleITK.Version_VersionString()
    assert "vtk" in versions
    assert options["prompt_install"] is False, "the module already asked the user"


def test_slicer_5_10_falls_back_to_pip_install_with_the_same_constraints():
    pip_install = Recorder()
    slicer = types.SimpleNamespace(util=types.SimpleNamespace(pip_install=pip_install))

    environment.install_requirements(slicer)

    (arguments,), _ = pip_install.calls[0]
    assert arguments[:2] == ["-r", str(environment.REQUIREMENTS)] and arguments[2] == "-c"
    assert set(pinned(arguments[3])) == {"numpy", "SimpleITK", "vtk"}


def test_requirements_name_tensorflow_and_leave_slicers_packages_alone():
    lines = [line.split("#")[0].strip() for line in environment.REQUIREMENTS.read_text().splitlines()]
    names = {line.split(">")[0].split("=")[0].split("[")[0].strip().lower() for line in lines if line}
    assert "tensorflow" in names
    assert not names & {"numpy", "simpleitk", "vtk"}


def test_a_python_without_ragan_is_reported_as_not_ready(tmp_path):
    job = TrainerJob(["info"], python=str(tmp_path / "missing-python"))
    job.start()
    assert job.state == JobState.FAILED
    ready, summary = environment.describe_environment(job)
    assert not ready and "cannot run RaGAN" in summary


def test_a_python_without_tensorflow_is_reported_with_what_to_do(tmp_path):
    """The real `ragan info` child, in a Python where TensorFlow cannot be imported (hidden by a stand-in package)."""
    hidden = tmp_path / "without-tensorflow" / "tensorflow"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'tensorflow' (hidden by the test)\")\n")
    job = environment.environment_check(sys.executable, environment=dict(os.environ, PYTHONPATH=str(hidden.parent)))

    assert job.wait(timeout_s=60) == JobState.DONE, job.message
    ready, summary = environment.describe_environment(job)
    assert not ready
    assert "TensorFlow is not installed" in summary and "Install the requirements" in summary
