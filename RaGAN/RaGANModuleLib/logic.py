"""What the module does, without Qt: start the trainer's jobs (train, resume, generate, paint, the environment check),
load what they made into a scene, export nnU-Net datasets. How the trainer runs comes in as arguments (a seam, so that
scripts and tests choose it without patching anything):

    logic = ModuleLogic(Trainer(python="/opt/ragan/.venv/bin/python"))
    job, run = logic.startTraining(scene, cases, {"steps": 600}, Path.home() / "RaGAN", "auto")
    job.wait(3600)                                   # or poll() from a timer, as the panel does
    job, out = logic.startGenerate(run / "model", count=16, seed=0, device="auto")  # addRare=1: more lesions
    job.wait(600)
    volume, segmentation = logic.loadGenerated(scene, job.finished["outputs"], run / "model")
    # A model trained with {"mode": "conditional"} paints a scan for a segmentation drawn on a volume, on its grid:
    job, folder, scan = logic.startPaint(scene, segmentationNode, run / "model", seed=0, device="auto")

`trainer` is a Trainer or a function returning one (the panel's: read from the Environment settings at each call);
`startJob` starts a made TrainerJob (default: TrainerJob.start, a real child process). The method names follow
Slicer's Logic classes (RaGANLogic in RaGAN.py is this class). What it starts and writes goes to Slicer's log.
"""

import dataclasses
import logging
import os
import shlex
import shutil
from pathlib import Path

from RaGANModuleLib import dataset_export, environment, locations, painting, results, training_cases
from RaGANModuleLib.trainer_job import TrainerJob, generate_arguments, train_arguments

log = logging.getLogger("RaGAN")  # Slicer shows Python logging in its log (Help > Report a bug)


@dataclasses.dataclass(frozen=True)
class Trainer:
    """How the trainer runs: a Python with RaGANLib's requirements, or a trainer command that replaces
    `python -m RaGANLib` (ssh, docker), and the environment it gets (None: this process's)."""

    python: str
    environment: dict | None = None
    command: tuple[str, ...] = ()
    problem: str | None = None  # why the trainer command as typed cannot be used (nothing runs while set)


def trainer_from_settings(chosen_python: str, command_text: str, slicer_home, startup_environment) -> Trainer:
    """The trainer the Environment panel describes. A chosen Python gets the environment Slicer started with
    (`startup_environment()`); without one, Slicer's own Python (PythonSlicer) runs with Slicer's environment."""
    if chosen_python:
        python, base = chosen_python, startup_environment()
    else:
        executable = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
        bundled = Path(slicer_home) / "bin" / executable
        python, base = str(bundled) if bundled.is_file() else (locations.slicer_python() or executable), None
    try:
        return Trainer(python, base, tuple(environment.trainer_command(command_text)))
    except environment.TrainerNotReady as error:
        return Trainer(python, base, problem=str(error))


class ModuleLogic:
    """The module's work on a scene, with the trainer and the job starter given (see the file's docstring)."""

    def __init__(self, trainer, startJob=TrainerJob.start):
        self._trainer = trainer if callable(trainer) else (lambda: trainer)
        self._startJob = startJob

    @property
    def trainer(self) -> Trainer:
        return self._trainer()

    def trainerCheck(self, refresh: bool = False) -> environment.TrainerCheck:
        """Whether the trainer's Python (or command) has the TensorFlow and Keras RaGAN needs (cached; a moment the
        first time)."""
        trainer = self.trainer
        if trainer.problem:
            return environment.TrainerCheck(False, trainer.problem, {})
        return environment.check_trainer_python(trainer.python, trainer.environment, refresh, list(trainer.command))

    def requireTrainer(self) -> None:
        """Raise TrainerNotReady with the reason when the trainer cannot run RaGAN; nothing is written."""
        check = self.trainerCheck()
        if not check.ready:
            raise environment.TrainerNotReady(check.reason)

    def startTraining(self, scene, cases, options: dict, outputFolder: Path, device: str):
        """Write the cases and spec to a new run folder and start `ragan train`; returns (job, run folder)."""
        self.requireTrainer()  # before the run folder: a Python without TensorFlow leaves nothing behind
        run = locations.new_run_folder(outputFolder)
        run.mkdir(parents=True)
        try:
            exported = training_cases.export_cases(scene, cases, run)
            training_cases.write_spec(run, exported, options)
        except Exception:
            shutil.rmtree(run, ignore_errors=True)  # no half-written run folder to confuse Resume later
            raise
        log.info("RaGAN: %d training case(s) written to %s", len(cases), run)
        return self._job(train_arguments(run), device, run), run

    def resumeTraining(self, runFolder: Path, device: str):
        if not (Path(runFolder) / "spec.json").is_file():
            raise ValueError(f"'{runFolder}' is not a RaGAN run folder (it has no spec.json)")
        self.requireTrainer()
        return self._job(train_arguments(runFolder, resume=True), device, Path(runFolder))

    def startGenerate(self, modelFolder: Path, count: int, seed: int, device: str, addRare: int = 0):
        """Start `ragan generate` into a new folder beside the model, with `addRare` more rare and thin components
        in each slice's layout (`--add-rare`, conditional models); returns (job, output folder)."""
        self.requireTrainer()
        # Refuses a folder that is not a model, or one the trainer's Keras cannot load, before starting anything.
        info = results.read_model(modelFolder, keras=self.trainerCheck().versions.get("keras"))
        reason = results.joint_model_reason(info, modelFolder, results.ADDING_RARE) if addRare else None
        if reason:  # the child would refuse it (exit 2): said here, before anything starts
            raise ValueError(
                f"{reason}; set 'Extra lesions / thin structures per slice' to 0 to generate from this model"
            )
        out = locations.new_run_folder(Path(modelFolder).parent, "generated")
        return self._job(generate_arguments(modelFolder, count, seed, out, addRare), device, None), out

    def startPaint(self, scene, segmentation, modelFolder: Path, seed: int, device: str):
        """Write the segmentation (on the grid of the volume it was drawn on) into a new `painted-NNN` folder beside
        the model and start `ragan generate --labels`; returns (job, that folder, the volume it was drawn on)."""
        self.requireTrainer()
        reason = painting.paint_unavailable_reason(modelFolder)  # a joint model, or no model: nothing is written
        if reason:
            raise ValueError(reason)
        results.read_model(modelFolder, keras=self.trainerCheck().versions.get("keras"))
        arguments, folder, scan = painting.prepare_painting(scene, segmentation, modelFolder, seed)
        return self._job(arguments, device, None), folder, scan

    def loadPainted(self, scene, outputs: dict, modelFolder: Path, sourceNode=None):
        """Load a finished paint job's volume and its segmentation (a copy of the one painted) beside the source
        study: (scalar volume, segmentation)."""
        log.info("RaGAN: loading the painted scan %s", outputs.get("images"))
        return painting.load_painted(scene, outputs, modelFolder, source_node=sourceNode)

    def loadGenerated(self, scene, outputs: dict, modelFolder: Path, sourceNode=None):
        """Load generated image and label files (a finished generate job's `outputs`): (scalar volume, segmentation)
        beside the source study."""
        log.info("RaGAN: loading the synthetic slices %s", outputs.get("image"))
        return results.load_generated(scene, outputs, modelFolder, source_node=sourceNode)

    def exportNnunet(self, target: Path, modelFolder: Path, includeReal: bool, syntheticDataset: Path | None):
        """Real cases (the run's spec.json names them) and synthetic ones into an nnU-Net dataset: returns (folder,
        splits_final.json)."""
        realPairs = dataset_export.run_pairs(modelFolder) if includeReal else []
        written = dataset_export.export_nnunet(target, modelFolder, realPairs, syntheticDataset)
        log.info("RaGAN: nnU-Net dataset written to %s", written[0])
        return written

    def checkEnvironment(self, device: str) -> TrainerJob:
        """A started `ragan info` job: what TensorFlow and device the trainer sees."""
        trainer = self.trainer
        job = environment.environment_check(trainer.python, device, trainer.environment, list(trainer.command))
        log.info("RaGAN: checking the trainer: %s", shlex.join(job.command))
        return job

    def _job(self, arguments, device, runFolder) -> TrainerJob:
        trainer = self.trainer
        job = TrainerJob(
            arguments, trainer.python, runFolder, device, trainer.environment, prefix=list(trainer.command)
        )
        self._startJob(job)
        log.info("RaGAN: started %s (device %s)", shlex.join(job.command), device)
        return job
