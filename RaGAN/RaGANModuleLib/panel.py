"""What the panel shows, without Qt: the cases table, and for each job a view that turns its events into panel state
(status line, progress and time left, the preview to show, what to load when it ends, taking output paths from its
`finished` event), and which buttons can be pressed. The widget in RaGAN.py only copies this state into Qt widgets.

    view = TrainingView(job, scene)        # after logic.startTraining
    if view.poll():                        # from the panel's timer: True once, when the job has just ended
        ...                                # view.failure: the message to show; view.model: the model folder
    progressBar.value, label.text = view.step, view.status

Texts pass through `tr` (Slicer's translation function in the panel, unchanged text elsewhere).
"""

import dataclasses
import logging
from pathlib import Path

from RaGANModuleLib import environment, results, training_cases
from RaGANModuleLib.trainer_job import JobState

log = logging.getLogger("RaGAN")


def untranslated(text: str) -> str:
    """The `tr` of scripts and tests: texts as written."""
    return text


def folder_or_none(path) -> Path | None:
    """A path parameter that is set (ctkPathLineEdit gives '.' or '' when empty)."""
    return Path(path) if path is not None and str(path) not in ("", ".") else None


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


# Cases.


def cases_table(scene, cases: list, axis: str, tr=untranslated) -> tuple[list[tuple[str, str, str]], str]:
    """The cases table's rows (image, label, labelled slices along `axis`, counted as the trainer cuts them) and the
    summary line under it."""
    rows = [
        (c.image.GetName(), c.label.GetName(), str(training_cases.labelled_slice_count(scene, c, axis))) for c in cases
    ]
    if not rows:
        return rows, tr("No training cases yet.")
    total = sum(int(row[2]) for row in rows)
    return rows, tr("{cases} case(s), {slices} labelled {axis} slices.").format(
        cases=len(rows), slices=total, axis=axis
    )


# Jobs.


class JobView:
    """One job as the panel shows it: a status line while it runs, and once it ended, whether it failed."""

    def __init__(self, job, status: str, tr=untranslated):
        self.job = job
        self.tr = tr
        self.status = status
        self.reported = False

    @property
    def running(self) -> bool:
        return not self.job.state.final

    @property
    def failed(self) -> bool:
        return self.job.state == JobState.FAILED

    @property
    def failure(self) -> str | None:
        """The message to show when the job ended without doing its work (failed, or stopped), else None."""
        return self.job.message or self.job.state.value if self.job.state != JobState.DONE else None

    @property
    def error(self) -> str | None:
        """What the panel shows in an error dialog once the job ended (None: nothing, the status says it all)."""
        return self.failure

    @property
    def outputs(self) -> dict:
        """The files the job wrote, as its `finished` event names them."""
        return (self.job.finished or {}).get("outputs", {})

    def poll(self) -> bool:
        """Take the job's new events; True once, when the job has just ended (its end is then in `status`)."""
        for event in self.job.poll():
            self.take(event)
        if self.job.state.final and not self.reported:
            self.reported = True
            self.end()
            log.info("RaGAN: %s: %s", " ".join(self.job.arguments[:1]), self.status)
            return True
        return False

    def take(self, event: dict) -> None:
        """One event from the job (the subclasses show what they need of them)."""

    def end(self) -> None:
        """The job has ended: say how."""


class TrainingView(JobView):
    """A training job: status, progress, the loss chart and the preview nodes in the scene, the model at the end."""

    def __init__(self, job, scene, tr=untranslated):
        super().__init__(job, tr("Starting the trainer (loading TensorFlow)..."), tr)
        self.scene = scene
        self.step = 0
        self.total = 0
        self.lossChart = results.LossChart(scene)
        self.preview = results.PreviewNodes(scene)
        self.newPreview = None  # (volume, label or None) of a preview that just arrived: the panel shows it once
        self.previewDetail = ""  # what the last preview's fine detail says (blurred, grainy or like the real slices)
        self.model: Path | None = None

    def forgetScene(self) -> None:
        """The scene was closed: its chart and preview nodes are gone (a new chart is made with the next step)."""
        self.lossChart = None
        self.preview = None

    @property
    def error(self) -> str | None:
        return self.status if self.failed else None  # stopped by the user: the status says so

    def takePreview(self) -> tuple | None:
        """The (volume, label or None) of a preview that arrived since the last call, for the panel to show once."""
        preview, self.newPreview = self.newPreview, None
        return preview

    def stopping(self) -> None:
        self.status = self.tr("Stopping: the trainer saves a checkpoint and exits...")

    def take(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "started":
            self.status = self.tr("Training on {device}.").format(device=event.get("device"))
            self.total = event.get("total", 0)
        elif kind == "progress":
            self.total, self.step = event["total"], event["step"]
            self.status = self.tr("Step {step}/{total}, {speed:.1f} images/s, {eta} left.").format(
                step=event["step"], total=event["total"], speed=event["images_per_s"], eta=duration(event["eta_s"])
            ) + (" " + self.previewDetail if self.previewDetail else "")
            if self.lossChart is None:
                self.lossChart = results.LossChart(self.scene)
            self.lossChart.add(event)
        elif kind == "preview":
            if event.get("fine_detail") is not None:
                from RaGANLib.quality.metrics import detail_verdict

                self.previewDetail = self.tr("Last preview (step {step}): synthetic slices {verdict}.").format(
                    step=event.get("step"), verdict=detail_verdict(event["fine_detail"])
                )
            if self.preview is not None and self.preview.update(event):
                if self.preview.step == event.get("step") and self.preview.volume is not None:
                    self.newPreview = (self.preview.volume, self.preview.label)
        elif kind == "notice":
            self.status = event.get("message", "")

    def end(self) -> None:
        if self.job.state == JobState.FAILED:
            self.status = self.tr("Training failed: {message}").format(message=self.job.message)
            return
        model = (self.job.finished or {}).get("model")
        self.model = Path(model) if model else None
        done = (
            self.tr("Training finished.")
            if self.job.state == JobState.DONE
            else self.tr("Training stopped ({message}).")
        )
        self.status = done.format(message=self.job.message) + " " + self.tr("Model: {model}").format(model=model or "-")


class GenerateView(JobView):
    """A generate job: synthetic slices from `modelFolder` into `folder`, loaded beside `source` (a case, or None)."""

    def __init__(self, job, modelFolder: Path, folder: Path, source=None, tr=untranslated):
        super().__init__(job, tr("Generating..."), tr)
        self.modelFolder, self.folder, self.source = Path(modelFolder), Path(folder), source

    def end(self) -> None:
        self.status = self.tr("Generating failed.") if self.failure else self.tr("Generated; loading...")

    def loaded(self, volume) -> None:
        """The result is in the scene: say so, with generate's notices (e.g. that this many synthetic slices would
        swamp the model's training slices)."""
        text = self.tr("Loaded '{name}' ({count} slices).").format(
            name=volume.GetName(), count=volume.GetImageData().GetDimensions()[2]
        )
        notices = [e["message"] for e in self.job.events if e.get("event") == "notice" and e.get("message")]
        self.status = " ".join([text, *notices])


class PaintView(JobView):
    """A paint job: a synthetic scan for `case.label` (a segmentation) on the grid of `case.image`."""

    def __init__(self, job, modelFolder: Path, folder: Path, case, tr=untranslated):
        status = tr("Synthesizing an image for '{name}' (in {folder})...").format(
            name=case.label.GetName(), folder=folder
        )
        super().__init__(job, status, tr)
        self.modelFolder, self.folder, self.source = Path(modelFolder), Path(folder), case

    def end(self) -> None:
        self.status = self.tr("Synthesizing failed.") if self.failure else self.tr("Synthesized; loading...")

    def loaded(self, volume) -> None:
        self.status = self.tr("Loaded '{name}': a synthetic scan for '{segmentation}'.").format(
            name=volume.GetName(), segmentation=self.source.label.GetName()
        )


class EnvironmentView(JobView):
    """The environment check (`ragan info`): what TensorFlow and device the trainer sees."""

    def __init__(self, job, tr=untranslated):
        super().__init__(job, tr("Asking the trainer's Python (loading TensorFlow)..."), tr)

    @property
    def error(self) -> str | None:
        return None  # the status label says what the trainer's Python lacks

    def end(self) -> None:
        self.status = environment.describe_environment(self.job)[1]


# Buttons.


class ModelReason:
    """Why the model folder cannot be used for something (`reason(model folder)`, e.g.
    painting.paint_unavailable_reason; None: it can), asked on every button update: model.json is read again only
    when it changed."""

    def __init__(self, reason):
        self._reason_of = reason
        self._key, self._reason = None, None

    def __call__(self, modelFolder: Path | None) -> str | None:
        modelJson = modelFolder / "model.json" if modelFolder else None
        key = (str(modelJson), modelJson.stat().st_mtime if modelJson and modelJson.is_file() else None)
        if self._key != key:
            self._key, self._reason = key, self._reason_of(modelFolder)
        return self._reason


# The tool tip of "Extra lesions / thin structures per slice" (`generate --add-rare`; README, "add-rare").
ADD_RARE_TIP = (
    "Conditional models: paste up to this many more lesions (any class with under half the pixels of the most common "
    "labelled class) and thin structures such as vessels, each cut from another training slice, into every "
    "synthetic slice's labels before its image is painted. On the phantom benchmark it did not raise the lesion's "
    "Dice further (0.89 with or without it) and lowered the thin vessel's a little (0.892 to 0.886): leave it at 0 "
    "unless a rare class is missing from most synthetic slices. 0: the training labels as they are."
)


@dataclasses.dataclass
class Button:
    enabled: bool
    text: str | None = None  # None: as the .ui has it
    toolTip: str | None = None


def buttons(
    trainer: environment.TrainerCheck,
    training: TrainingView | None,
    generating: GenerateView | None,
    painting: PaintView | None,
    checking: EnvironmentView | None,
    hasCases: bool,
    modelFolder: Path | None,
    paintReason: str | None,
    paintSegmentation: bool,
    exportFolder: Path | None,
    addRare: int = 0,
    addRareReason: str | None = None,
    tr=untranslated,
) -> dict[str, Button]:
    """Which of the panel's buttons (and the Generate section's "Extra lesions / thin structures per slice", `addRare`,
    which `addRareReason` says a joint model cannot use) can be pressed now, by their .ui names, with text and tool
    tip where they vary."""
    isTraining = training is not None and training.running
    stopping = isTraining and training.job.state == JobState.STOPPING
    isGenerating = generating is not None and generating.running
    cannotPaint = (
        paintReason
        or (None if trainer.ready else trainer.reason)
        or (None if paintSegmentation else tr("pick the segmentation to synthesize an image for"))
    )
    if isTraining:
        trainTip = tr("Stop training (saves a checkpoint)")
    else:
        trainTip = tr("Start training") if trainer.ready else trainer.reason
    return {
        "trainButton": Button(
            (isTraining and not stopping) or (not isTraining and hasCases and trainer.ready),
            tr("Stop") if isTraining else tr("Train"),
            trainTip,
        ),
        "resumeButton": Button(not isTraining and trainer.ready),
        "generateButton": Button(
            not isGenerating and modelFolder is not None and (modelFolder / "model.json").is_file() and trainer.ready
        ),
        "paintButton": Button(
            not (painting is not None and painting.running) and cannotPaint is None,
            None,
            tr("Paint a synthetic scan for the chosen segmentation on its volume's grid, shown beside that volume")
            if cannotPaint is None
            else tr("Not available: {reason}").format(reason=cannotPaint),
        ),
        # Left enabled above 0 with a joint model, so that it can be set back to 0 (Generate refuses it until then).
        "addRareSpinBox": Button(
            addRareReason is None or addRare > 0,
            None,
            tr(ADD_RARE_TIP)
            if addRareReason is None
            else tr("Not available: {reason}").format(reason=addRareReason)
            + (tr(". Set it to 0 to generate from this model.") if addRare > 0 else ""),
        ),
        "exportButton": Button(not isGenerating and exportFolder is not None),
        "checkEnvironmentButton": Button(not (checking is not None and checking.running)),
    }
