"""What the panel's buttons do, without Qt: the case list they edit on the parameter node, the requests they make of
the module's logic from the parameter node's values, the jobs they started (each with its view, panel.py), what is
loaded when a job ends, and the state the widget copies into its widgets. RaGAN.py's widget calls these and shows the
outcome in Qt:

    actions = PanelActions(logic, scene, tr, case=RaGANCase)   # case: how the parameter node stores a case
    actions.addChosenCase(p)                     # p: the parameter node; NeedsInput: a warning to show
    actions.generate(p.modelFolder, p.count, p.generateSeed, p.device, actions.cases(p), p.addRare)
    for view in actions.poll(p):                 # from the panel's timer: the views whose jobs have just ended
        ...                                      # view.error: the message to show; actions.load(view): the result
    actions.widgetStates(trainer, p)             # {"trainButton": {"enabled": True, "text": "Train", ...}, ...}
"""

import dataclasses
from pathlib import Path

from RaGANModuleLib import dataset_export, demo_data, painting, panel, results, training_cases


class NeedsInput(ValueError):
    """A button was pressed before the user chose what it needs: the panel shows this as a warning, not an error."""


class PanelActions:
    """The panel's jobs on one scene, started with `logic` (RaGANModuleLib.logic.ModuleLogic); texts pass through
    `tr` (Slicer's translation function in the panel)."""

    def __init__(self, logic, scene, tr=panel.untranslated, case=training_cases.TrainingCase):
        self.logic, self.scene, self.tr, self.case = logic, scene, tr, case
        self.tableKey = None  # the cases and slicing axis the cases table shows
        self.training: panel.TrainingView | None = None
        self.generating: panel.GenerateView | None = None
        self.painting: panel.PaintView | None = None
        self.checking: panel.EnvironmentView | None = None
        self.result: panel.GenerateView | panel.PaintView | None = None  # started last: its status is shown
        self.paintReason = panel.ModelReason(painting.paint_unavailable_reason)
        self.addRareReason = panel.ModelReason(results.add_rare_unavailable_reason)

    def views(self) -> list:
        return [v for v in (self.training, self.generating, self.painting, self.checking) if v is not None]

    @property
    def running(self) -> bool:
        return any(view.running for view in self.views())

    def stopAll(self) -> None:
        """Slicer closes: running jobs are asked to stop (a trainer saves its checkpoint)."""
        for view in self.views():
            view.job.request_stop()

    # The case list (the parameter node's `cases`).

    def cases(self, parameters) -> list:
        """The training cases whose nodes are still in the scene."""
        return [case for case in parameters.cases if case.image and case.label]

    def addCases(self, parameters, new: list) -> None:
        """Add cases (anything with .image and .label) not in the list yet."""
        added = [self.case(image=case.image, label=case.label) for case in new]
        parameters.cases = training_cases.with_cases(self.cases(parameters), added)

    def removeCases(self, parameters, rows: set) -> None:
        """Remove the cases of these rows of the cases table."""
        parameters.cases = [case for row, case in enumerate(self.cases(parameters)) if row not in rows]

    def addChosenCase(self, parameters) -> None:
        self.addCases(parameters, [self.chosenCase(parameters.imageVolume, parameters.labelNode)])

    def addLabelledCases(self, parameters) -> None:
        self.addCases(parameters, self.labelledCases(self.cases(parameters)))

    def addDemoCase(self, parameters):
        """A new phantom case in the scene, added to the list and chosen as the input, with CT intensities: its
        volume."""
        volume, segmentation = demo_data.add_phantom_case(self.scene, seed=len(self.cases(parameters)))
        self.addCases(parameters, [training_cases.TrainingCase(volume, segmentation)])
        parameters.imageVolume, parameters.labelNode, parameters.intensity = volume, segmentation, "ct"
        return volume

    def casesTable(self, parameters) -> tuple | None:
        """panel.cases_table for the parameter node's cases and slicing axis when either changed since the last call,
        else None (counting the labelled slices exports each label)."""
        cases = self.cases(parameters)
        key = (parameters.axis, [(case.image.GetID(), case.label.GetID()) for case in cases])
        if key == self.tableKey:
            return None
        self.tableKey = key
        return panel.cases_table(self.scene, cases, parameters.axis, self.tr)

    # Jobs.

    def chosenCase(self, image, label) -> training_cases.TrainingCase:
        if not image or not label:
            raise NeedsInput(self.tr("Select an image volume and its label first."))
        return training_cases.TrainingCase(image, label)

    def labelledCases(self, known: list) -> list[training_cases.TrainingCase]:
        """Every volume of the scene that has a label; NeedsInput when there is none and the list is empty too."""
        found = training_cases.cases_with_labels(self.scene)
        if not found and not known:
            raise NeedsInput(self.tr("No volume in the scene has a segmentation or labelmap made on it."))
        return found

    def trainOrStop(self, cases: list, options: dict, outputFolder, device: str) -> panel.TrainingView | None:
        """Stop the running training, or start one on `cases` in a new run folder under `outputFolder`: its view."""
        if self.training is not None and self.training.running:
            self.training.job.request_stop()
            self.training.stopping()
            return None
        job, _run = self.logic.startTraining(self.scene, cases, options, Path(outputFolder), device)
        return self.watchTraining(job)

    def resume(self, runFolder, device: str) -> panel.TrainingView:
        return self.watchTraining(self.logic.resumeTraining(Path(runFolder), device))

    def watchTraining(self, job) -> panel.TrainingView:
        self.training = panel.TrainingView(job, self.scene, self.tr)
        return self.training

    def generate(self, modelFolder, count: int, seed: int, device: str, cases: list, addRare: int = 0) -> None:
        """Start generating from the model folder (with `addRare` extra lesions / thin structures per slice: a
        conditional model's `--add-rare`); the result is loaded beside the first case when it ends."""
        model = panel.folder_or_none(modelFolder)
        if model is None:
            raise NeedsInput(self.tr("Choose a model folder (the model/ folder of a training run)."))
        job, folder = self.logic.startGenerate(model, count, seed, device, addRare)
        self.generating = self.result = panel.GenerateView(job, model, folder, cases[0] if cases else None, self.tr)

    def paint(self, segmentation, modelFolder, seed: int, device: str) -> None:
        """Start painting a synthetic scan for `segmentation` on the grid of the volume it was drawn on."""
        if not segmentation:
            raise ValueError(self.tr("Pick the segmentation to synthesize an image for."))
        model = panel.folder_or_none(modelFolder)
        job, folder, scan = self.logic.startPaint(self.scene, segmentation, model, seed, device)
        case = training_cases.TrainingCase(scan, segmentation)
        self.painting = self.result = panel.PaintView(job, model, folder, case, self.tr)

    def check(self, device: str) -> None:
        self.checking = panel.EnvironmentView(self.logic.checkEnvironment(device), self.tr)

    def poll(self, parameters=None) -> list:
        """The views take what their jobs reported; returns those whose jobs have just ended. A training that ended
        with a model sets the parameter node's model folder (`parameters`; None while the scene closes)."""
        ended = [view for view in self.views() if view.poll()]
        if self.training in ended and self.training.model and parameters:
            parameters.modelFolder = self.training.model
        return ended

    def load(self, view) -> tuple:
        """A finished generate or paint job's volume and segmentation into the scene beside the case it was made for:
        (that case or None, volume, segmentation, the slicing axis to show them along)."""
        load = self.logic.loadGenerated if isinstance(view, panel.GenerateView) else self.logic.loadPainted
        source = view.source.image if view.source else None
        volume, segmentation = load(self.scene, view.outputs, view.modelFolder, source)
        view.loaded(volume)
        return view.source, volume, segmentation, results.read_model(view.modelFolder).grid.axis

    def export(self, exportFolder, modelFolder, includeReal: bool, includeSynthetic: bool) -> tuple[str, str | None]:
        """Write the nnU-Net dataset (the run's real cases, the last generated synthetic ones): the message to show,
        and a warning when the synthetic cases would swamp the real ones (else None), which the generate panel's
        status line then says until the next job."""
        target, model = panel.folder_or_none(exportFolder), panel.folder_or_none(modelFolder)
        if target is None or model is None:
            raise NeedsInput(self.tr("Choose a model folder and a dataset folder to export to."))
        generated = self.generating.folder if self.generating else None
        synthetic = generated / "nnunet" if includeSynthetic and generated else None
        written, splits = self.logic.exportNnunet(target, model, includeReal, synthetic)
        message = self.tr("nnU-Net dataset written to {folder}.").format(folder=written)
        if splits is not None:
            message += " " + self.tr(
                "Its splits_final.json validates on real cases only: copy it into "
                "nnUNet_preprocessed/{name}/ after nnUNetv2_plan_and_preprocess and before training."
            ).format(name=written.name)
        warning = dataset_export.synthetic_share_warning(written, model)
        if warning and self.result is not None:
            self.result.status = warning
        return message, warning

    def logTail(self) -> str:
        """The last lines of the log of the training, else of the last result job, else of the environment check."""
        view = self.training or self.result or self.checking
        return view.job.log_tail(60) if view else self.tr("Nothing has run yet.")

    def statusTexts(self) -> dict[str, str]:
        """The status labels' texts by their .ui names, for the jobs started so far."""
        labels = {"trainingStatusLabel": self.training, "generateStatusLabel": self.result}
        labels["environmentStatusLabel"] = self.checking
        return {name: view.status for name, view in labels.items() if view is not None}

    def buttons(self, trainer, hasCases: bool, modelFolder, paintSegmentation, exportFolder, addRare: int = 0) -> dict:
        """panel.buttons for the parameter node's values and these jobs."""
        model = panel.folder_or_none(modelFolder)
        return panel.buttons(
            trainer,
            self.training,
            self.generating,
            self.painting,
            self.checking,
            hasCases=hasCases,
            modelFolder=model,
            paintReason=self.paintReason(model),
            paintSegmentation=bool(paintSegmentation),
            exportFolder=panel.folder_or_none(exportFolder),
            addRare=addRare,
            addRareReason=self.addRareReason(model),
            tr=self.tr,
        )

    def widgetStates(self, trainer, parameters) -> dict[str, dict]:
        """What the trainer, the jobs and the parameter node's values decide of the panel's widgets: their properties
        by the widgets' .ui names."""
        states = {name: {"text": text} for name, text in self.statusTexts().items()}
        states["trainerNotReadyWidget"] = {"visible": not trainer.ready}
        states["trainerNotReadyLabel"] = {"text": trainer.reason}
        if self.training is not None:
            states["trainingProgressBar"] = {"maximum": self.training.total, "value": self.training.step}
        p = parameters
        buttons = self.buttons(
            trainer, bool(self.cases(p)), p.modelFolder, p.paintSegmentation, p.exportFolder, p.addRare
        )
        for name, button in buttons.items():
            states[name] = {key: value for key, value in dataclasses.asdict(button).items() if value is not None}
        return states
