"""The trainer's environment: checked in a moment before anything is written (versions against RaGAN's pins), and
the requirements installed into Slicer's Python only on request, never in testing mode, never replacing Slicer's
numpy, SimpleITK or vtk."""

import contextlib
import importlib.metadata
import os
import subprocess
import sys

import pytest
import slicer
from RaGANModuleLib import environment
from RaGANModuleLib.trainer_job import JobState, TrainerJob
from slicer_test_support import bare_python, module_logic


class Recorder:
    """slicer.util.pip_install, recording its arguments and the constraints file's pins while pip would run."""

    def __init__(self):
        self.calls, self.pins = [], []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        self.pins.append(pinned(args[0][3]))
        return args[0] if args else None


def pinned(path) -> dict[str, str]:
    return dict(line.split("==") for line in open(path).read().split())


# slicer/packaging.py as Slicer 5.12 ships it: a file in the slicer package that Slicer does not import at start-up,
# with 5.12's pip_ensure signature (a keyword 5.12 lacks fails here as it would there). It records instead of
# running pip: the tests must not install TensorFlow.
PACKAGING_5_12 = """
calls = []

def load_requirements(path):
    return ["requirements of " + str(path)]

def pip_ensure(requirements, constraints=None, skip_packages=None, prompt_install=True, prompt_restart=True,
               requester=None, skip_in_testing=True, show_progress=True):
    calls.append(dict(requirements=requirements, constraints=constraints, prompt_install=prompt_install,
                      requester=requester, show_progress=show_progress, pins=open(constraints).read().split()))
"""


@pytest.fixture
def slicer_package(tmp_path, monkeypatch):
    """The real `slicer` package, with a further folder of the package (as Slicer's own install has) to put
    slicer/packaging.py into; the imported submodule is forgotten afterwards."""
    folder = tmp_path / "slicer"
    folder.mkdir()
    monkeypatch.setattr(slicer, "__path__", [*slicer.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    pip_install = Recorder()
    monkeypatch.setattr(slicer.util, "pip_install", pip_install)
    yield folder, pip_install
    sys.modules.pop("slicer.packaging", None)


def test_testing_mode_installs_nothing(slicer_package):
    folder, pip_install = slicer_package
    (folder / "packaging.py").write_text(PACKAGING_5_12)
    assert environment.install_requirements(testing=True).startswith("skipped")
    assert "slicer.packaging" not in sys.modules and not pip_install.calls


def test_slicer_5_12_imports_slicer_packaging_and_uses_pip_ensure_with_progress(slicer_package):
    folder, pip_install = slicer_package
    (folder / "packaging.py").write_text(PACKAGING_5_12)
    assert not hasattr(slicer, "packaging"), "Slicer does not import slicer.packaging at start-up"

    message = environment.install_requirements()

    calls = sys.modules["slicer.packaging"].calls
    assert len(calls) == 1 and not pip_install.calls and "pip_ensure" in message
    assert calls[0]["requirements"] == [f"requirements of {environment.REQUIREMENTS}"]
    assert calls[0]["prompt_install"] is False, "the module already asked the user"
    assert calls[0]["show_progress"] is True and calls[0]["requester"] == "RaGAN"
    import numpy
    import SimpleITK

    versions = dict(pin.split("==") for pin in calls[0]["pins"])
    assert versions["numpy"] == numpy.__version__ and versions["SimpleITK"] == SimpleITK.Version_VersionString()
    assert "vtk" in versions
    assert not os.path.exists(calls[0]["constraints"]), "the temporary constraints file is removed after pip"


def test_slicer_5_10_falls_back_to_pip_install_inside_the_busy_dialog(slicer_package):
    """slicer-core, like Slicer 5.10, has no slicer/packaging.py: the real import fails and pip_install runs."""
    _, pip_install = slicer_package
    entered = []

    @contextlib.contextmanager
    def busy():
        entered.append("open")
        yield
        entered.append("closed")

    message = environment.install_requirements(busy=busy)

    (arguments,), _ = pip_install.calls[0]
    assert arguments[:2] == ["-r", str(environment.REQUIREMENTS)] and arguments[2] == "-c"
    assert set(pip_install.pins[0]) == {"numpy", "SimpleITK", "vtk"}
    assert not os.path.exists(arguments[3]), "the temporary constraints file is removed after pip"
    assert entered == ["open", "closed"] and "pip_install" in message


def test_a_slicer_packaging_that_fails_to_import_is_reported_not_mistaken_for_slicer_5_10(slicer_package):
    folder, pip_install = slicer_package
    (folder / "packaging.py").write_text("import a_module_that_is_not_there_ragan\n")
    with pytest.raises(ModuleNotFoundError, match="a_module_that_is_not_there_ragan"):
        environment.install_requirements()
    assert not pip_install.calls


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


def installed(python: str, **packages: str) -> None:
    """Record packages as installed in `python`'s site-packages (their metadata, which is what the check reads)."""
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for name, version in packages.items():
        info = os.path.join(site, f"{name}-{version}.dist-info")
        os.makedirs(info)
        with open(os.path.join(info, "METADATA"), "w") as handle:
            handle.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_the_check_reads_versions_without_importing_tensorflow(tmp_path):
    """TensorFlow is hidden behind a package that fails on import: the check still reports the installed versions."""
    hidden = tmp_path / "tensorflow"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('imported by the check')\n")
    check = environment.check_trainer_python(sys.executable, dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert check.ready, check.reason
    assert check.versions["tensorflow"] == importlib.metadata.version("tensorflow")
    assert check.versions["keras"] == importlib.metadata.version("keras")
    assert environment.check_trainer_python(sys.executable, dict(os.environ)) is not check, "another environment"
    again = environment.check_trainer_python(sys.executable, dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert again is check, "asked once per Python"
    assert environment.check_trainer_python(sys.executable, refresh=True) is not check


def test_a_python_without_tensorflow_disables_training_before_anything_is_written(scene, tmp_path):
    from RaGANModuleLib import demo_data, training_cases

    python = bare_python(tmp_path / "bare")
    logic = module_logic(python)
    check = logic.trainerCheck()
    assert not check.ready
    assert "tensorflow is not installed (RaGAN needs tensorflow>=2.20,<3)" in check.reason
    assert "keras is not installed" in check.reason and python in check.reason
    volume, segmentation = demo_data.add_phantom_case(scene, seed=0, shape=(6, 64, 64))
    cases = [training_cases.TrainingCase(volume, segmentation)]
    output = tmp_path / "runs"
    with pytest.raises(environment.TrainerNotReady, match="tensorflow is not installed"):
        logic.startTraining(scene, cases, {"steps": 4}, output, "cpu")
    assert not output.exists(), "no run folder for a trainer that cannot start"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "spec.json").write_text("{}")
    with pytest.raises(environment.TrainerNotReady):
        logic.resumeTraining(tmp_path / "run", "cpu")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["spec.json"]


def test_versions_below_the_pins_are_named_with_the_version_to_install(tmp_path):
    python = bare_python(tmp_path / "old")
    installed(python, tensorflow="2.21.0", keras="3.12.0")
    check = environment.check_trainer_python(python)
    assert not check.ready
    assert "keras 3.12.0 is too old (RaGAN needs keras>=3.15,<4)" in check.reason
    assert "tensorflow" not in check.reason.split(":", 1)[1], "TensorFlow 2.21 is fine"


def test_a_python_that_cannot_start_is_reported(tmp_path):
    check = environment.check_trainer_python(str(tmp_path / "no-python"))
    assert not check.ready and "cannot be started" in check.reason and "no-python" in check.reason
