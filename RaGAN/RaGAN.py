"""RaGAN: train a GAN on a few labelled scans and load synthetic image + label slices back into the scene.

Slicer's scripted-module shape (Module, parameter node, Widget, Logic, Test). The work happens elsewhere: the Qt-free
RaGANModuleLib package (scene <-> files, the trainer child process) and, in a child process, the RaGANLib trainer.
Nothing here imports TensorFlow.
"""

import os
import shutil
from pathlib import Path
from typing import Annotated, Union

import qt
import slicer
import vtk
from RaGANModuleLib import dataset_export, demo_data, environment, locations, results, training_cases
from RaGANModuleLib.trainer_job import JobState, TrainerJob, generate_arguments, train_arguments
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

PYTHON_SETTING = "RaGAN/TrainerPython"


#
# RaGAN
#


class RaGAN(ScriptedLoadableModule):
    """Slicer calls this once at start-up to learn the module's name, category and help."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("RaGAN")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["RaGAN developers"]
        self.parent.helpText = _(
            "Train a generative adversarial network on a few labelled scans and generate synthetic image + label "
            "slices, e.g. to train segmentation networks where expert labels are scarce. "
            '<a href="https://github.com/RaGAN-project/RaGAN#3d-slicer">Documentation</a>.'
        )
        self.parent.acknowledgementText = _(
            "Training runs in a separate process (RaGANLib, TensorFlow/Keras) so that Slicer stays responsive."
        )


#
# RaGANParameterNode
#


@parameterNodeWrapper
class RaGANParameterNode:
    """The module's settings in the scene (saved with it); the .ui widgets bind to these by SlicerParameterName."""

    imageVolume: vtkMRMLScalarVolumeNode
    labelNode: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]  # noqa: UP007 (the wrapper reads typing.Union)
    caseImages: list[vtkMRMLScalarVolumeNode]
    caseLabels: list[vtkMRMLNode]

    preset: Annotated[str, Choice(list(training_cases.TRAINING_PRESETS))] = "quick look"
    outputFolder: Path = locations.default_output_folder()
    device: Annotated[str, Choice(["auto", "cpu"])] = "auto"
    axis: Annotated[str, Choice(["axial", "coronal", "sagittal"])] = "axial"
    size: Annotated[int, WithinRange(64, 512)] = 64
    steps: Annotated[int, WithinRange(1, 1000000)] = 600
    batch: Annotated[int, WithinRange(1, 512)] = 8
    intensity: Annotated[str, Choice(["auto", "ct", "mr", "xray"])] = "auto"
    slices: Annotated[str, Choice(["labelled", "all"])] = "labelled"
    seed: Annotated[int, WithinRange(0, 999999)] = 0
    augment: Annotated[str, Choice(["0.5", "ada", "0.25", "0"])] = "0.5"  # as --augment takes it: a probability or ada

    modelFolder: Path = locations.default_output_folder()  # set to the run's model/ when training ends
    count: Annotated[int, WithinRange(1, 100000)] = 16
    generateSeed: Annotated[int, WithinRange(0, 999999)] = 0
    exportFolder: Path = locations.default_output_folder() / "nnUNet_raw" / "Dataset501_RaGAN"
    exportReal: bool = True
    exportSynthetic: bool = True


#
# RaGANWidget
#


class RaGANWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Slicer makes this when the user first opens the module: wiring between the panel, the logic and the jobs."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.trainingJob = None
        self.trainingReported = False
        self.generateJob = None
        self.environmentJob = None
        self.runFolder = None
        self.generateFolder = None
        self.generateModel = None
        self.lossChart = None
        self.preview = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RaGAN.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RaGANLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.addCaseButton.connect("clicked(bool)", self.onAddCase)
        self.ui.addAllCasesButton.connect("clicked(bool)", self.onAddAllCases)
        self.ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCases)
        self.ui.demoDataButton.connect("clicked(bool)", self.onDemoData)
        self.ui.presetComboBox.connect("activated(int)", self.onPresetChanged)  # the user picked one
        self.ui.trainButton.connect("clicked(bool)", self.onTrainOrStop)
        self.ui.resumeButton.connect("clicked(bool)", self.onResume)
        self.ui.showLogButton.connect("clicked(bool)", self.onShowLog)
        self.ui.generateButton.connect("clicked(bool)", self.onGenerate)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.checkEnvironmentButton.connect("clicked(bool)", self.onCheckEnvironment)
        self.ui.installButton.connect("clicked(bool)", self.onInstallRequirements)
        self.ui.pythonPathLineEdit.currentPath = qt.QSettings().value(PYTHON_SETTING, "")
        self.ui.pythonPathLineEdit.connect("currentPathChanged(QString)", self.onPythonChanged)
        self.ui.casesTable.horizontalHeader().setSectionResizeMode(qt.QHeaderView.Stretch)

        # Jobs report through a timer on the GUI thread: the panel never waits for a child process.
        self.timer = qt.QTimer()
        self.timer.setInterval(300)
        self.timer.connect("timeout()", self.onTimer)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Slicer calls this when the application closes: a running trainer is asked to stop."""
        self.timer.stop()
        for job in (self.trainingJob, self.generateJob, self.environmentJob):
            if job is not None and not job.state.final:
                job.request_stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        self.lossChart = None
        self.preview = None
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.imageVolume:
            self._parameterNode.imageVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.updateCasesTable()
            self.updateButtons()

    # Inputs panel.

    def cases(self) -> list:
        """The training cases whose nodes are still in the scene."""
        p = self._parameterNode
        pairs = zip(p.caseImages, p.caseLabels)
        return [training_cases.TrainingCase(image, label) for image, label in pairs if image and label]

    def setCases(self, cases) -> None:
        self._parameterNode.caseImages = [c.image for c in cases]
        self._parameterNode.caseLabels = [c.label for c in cases]
        self.updateCasesTable()

    def onAddCase(self) -> None:
        p = self._parameterNode
        if not p.imageVolume or not p.labelNode:
            slicer.util.warningDisplay(_("Select an image volume and its label first."))
            return
        known = {(c.image.GetID(), c.label.GetID()) for c in self.cases()}
        if (p.imageVolume.GetID(), p.labelNode.GetID()) not in known:
            self.setCases(self.cases() + [training_cases.TrainingCase(p.imageVolume, p.labelNode)])

    def onAddAllCases(self) -> None:
        known = {(c.image.GetID(), c.label.GetID()) for c in self.cases()}
        found = [
            c
            for c in training_cases.cases_with_labels(slicer.mrmlScene)
            if (c.image.GetID(), c.label.GetID()) not in known
        ]
        if not found and not known:
            slicer.util.warningDisplay(_("No volume in the scene has a segmentation or labelmap made on it."))
        self.setCases(self.cases() + found)

    def onRemoveCases(self) -> None:
        rows = {index.row() for index in self.ui.casesTable.selectionModel().selectedRows()}
        self.setCases([c for row, c in enumerate(self.cases()) if row not in rows])

    def onDemoData(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not make the demo case."), waitCursor=True):
            seed = len(self.cases())
            volume, segmentation = demo_data.add_phantom_case(slicer.mrmlScene, seed=seed)
            self.setCases(self.cases() + [training_cases.TrainingCase(volume, segmentation)])
            self._parameterNode.imageVolume = volume
            self._parameterNode.labelNode = segmentation
            self._parameterNode.intensity = "ct"
            slicer.util.setSliceViewerLayers(background=volume, fit=True)

    def updateCasesTable(self) -> None:
        cases = self.cases()
        table = self.ui.casesTable
        table.setRowCount(len(cases))
        total = 0
        for row, case in enumerate(cases):
            count = training_cases.labelled_slice_count(slicer.mrmlScene, case, self._parameterNode.axis)
            total += count
            for column, text in enumerate((case.image.GetName(), case.label.GetName(), str(count))):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        self.ui.casesSummaryLabel.text = (
            _("{cases} case(s), {slices} labelled {axis} slices.").format(
                cases=len(cases), slices=total, axis=self._parameterNode.axis
            )
            if cases
            else _("No training cases yet.")
        )
        self.updateButtons()

    # Training panel.

    def onPresetChanged(self, index: int) -> None:
        if not self._parameterNode:
            return
        preset = training_cases.TRAINING_PRESETS.get(self.ui.presetComboBox.currentText)
        if preset:
            self._parameterNode.size = preset["size"]
            self._parameterNode.steps = preset["steps"]
            self._parameterNode.batch = preset["batch"]

    def trainingOptions(self) -> dict:
        p = self._parameterNode
        return {
            "size": p.size,
            "steps": p.steps,
            "batch": p.batch,
            "axis": p.axis,
            "intensity": p.intensity,
            "slices": p.slices,
            "seed": p.seed,
            "augment": p.augment,
        }

    def onTrainOrStop(self) -> None:
        if self.trainingJob is not None and not self.trainingJob.state.final:
            self.trainingJob.request_stop()
            self.ui.trainingStatusLabel.text = _("Stopping: the trainer saves a checkpoint and exits...")
            self.updateButtons()
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start training."), waitCursor=True):
            job, runFolder = self.logic.startTraining(
                slicer.mrmlScene,
                self.cases(),
                self.trainingOptions(),
                Path(self._parameterNode.outputFolder),
                self._parameterNode.device,
            )
            self.watchTraining(job, runFolder)

    def onResume(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Run folder to resume"), str(self._parameterNode.outputFolder)
        )
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not resume the run."), waitCursor=True):
            job = self.logic.resumeTraining(Path(folder), self._parameterNode.device)
            self.watchTraining(job, Path(folder))

    def watchTraining(self, job, runFolder) -> None:
        self.trainingJob = job
        self.trainingReported = False
        self.runFolder = runFolder
        self.lossChart = results.LossChart(slicer.mrmlScene)
        self.preview = results.PreviewNodes(slicer.mrmlScene)
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotView)
        slicer.modules.plots.logic().ShowChartInLayout(self.lossChart.chart)
        self.ui.trainingProgressBar.value = 0
        self.ui.trainingStatusLabel.text = _("Starting the trainer (loading TensorFlow)...")
        self.timer.start()
        self.updateButtons()

    def onShowLog(self) -> None:
        job = self.trainingJob or self.generateJob or self.environmentJob
        text = job.log_tail(60) if job else _("Nothing has run yet.")
        slicer.util.infoDisplay(_("The last lines of the trainer's log."), detailedText=text, windowTitle="RaGAN log")

    # Generate panel.

    def onGenerate(self) -> None:
        modelFolder = folderOrNone(self._parameterNode.modelFolder)
        if modelFolder is None:
            slicer.util.warningDisplay(_("Choose a model folder (the model/ folder of a training run)."))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start generating."), waitCursor=True):
            p = self._parameterNode
            self.generateJob, self.generateFolder = self.logic.startGenerate(
                modelFolder, p.count, p.generateSeed, p.device
            )
            self.generateModel = modelFolder
            self.ui.generateStatusLabel.text = _("Generating...")
            self.timer.start()
            self.updateButtons()

    def finishGenerate(self) -> None:
        job = self.generateJob
        if job.state != JobState.DONE:
            self.ui.generateStatusLabel.text = _("Generating failed.")
            slicer.util.errorDisplay(job.message, detailedText=job.log_tail(), windowTitle="RaGAN")
            return
        with slicer.util.tryWithErrorDisplay(_("Could not load the synthetic slices."), waitCursor=True):
            source = self.cases()[0] if self.cases() else None
            volume, segmentation = self.logic.loadGenerated(
                slicer.mrmlScene, job, self.generateModel, source.image if source else None
            )
            self.showSideBySide(source, volume, segmentation)
            self.ui.generateStatusLabel.text = _("Loaded '{name}' ({count} slices).").format(
                name=volume.GetName(), count=volume.GetImageData().GetDimensions()[2]
            )

    def showSideBySide(self, realCase, syntheticVolume, syntheticSegmentation) -> None:
        """Real case on the left (Red), synthetic on the right (Yellow), each with its labels, views linked."""
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        views = {"Red": realCase.image if realCase else None, "Yellow": syntheticVolume}
        for viewName, volume in views.items():
            sliceWidget = layoutManager.sliceWidget(viewName)
            composite = sliceWidget.mrmlSliceCompositeNode()
            composite.SetBackgroundVolumeID(volume.GetID() if volume else None)
            composite.SetLabelVolumeID(None)
            composite.SetLinkedControl(True)
            sliceWidget.sliceLogic().FitSliceToAll()
        showOnlyIn(syntheticSegmentation, "vtkMRMLSliceNodeYellow")
        if realCase is not None:
            if training_cases.is_segmentation(realCase.label):
                showOnlyIn(realCase.label, "vtkMRMLSliceNodeRed")
            else:
                layoutManager.sliceWidget("Red").mrmlSliceCompositeNode().SetLabelVolumeID(realCase.label.GetID())

    def onExport(self) -> None:
        p = self._parameterNode
        target = folderOrNone(p.exportFolder)
        modelFolder = folderOrNone(p.modelFolder)
        if target is None or modelFolder is None:
            slicer.util.warningDisplay(_("Choose a model folder and a dataset folder to export to."))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not export the nnU-Net dataset."), waitCursor=True):
            synthetic = self.generateFolder / "nnunet" if p.exportSynthetic and self.generateFolder else None
            written = self.logic.exportNnunet(target, modelFolder, includeReal=p.exportReal, syntheticDataset=synthetic)
            slicer.util.infoDisplay(_("nnU-Net dataset written to {folder}").format(folder=written))

    # Environment panel.

    def onPythonChanged(self, path: str) -> None:
        qt.QSettings().setValue(PYTHON_SETTING, path)

    def onCheckEnvironment(self) -> None:
        self.environmentJob = self.logic.checkEnvironment(self._parameterNode.device)
        self.ui.environmentStatusLabel.text = _("Asking the trainer's Python (loading TensorFlow)...")
        self.timer.start()
        self.updateButtons()

    def onInstallRequirements(self) -> None:
        question = _(
            "Install TensorFlow and Keras into Slicer's own Python? This downloads about 600 MB. Slicer's numpy, "
            "SimpleITK and vtk stay as they are. Alternatively, choose another Python that has TensorFlow."
        )
        if not slicer.util.confirmOkCancelDisplay(question, windowTitle="RaGAN"):
            return
        with slicer.util.tryWithErrorDisplay(_("Installing the requirements failed."), waitCursor=True):
            message = environment.install_requirements(slicer, testing=slicer.app.testingEnabled())
            self.ui.environmentStatusLabel.text = message
        self.onCheckEnvironment()

    # Jobs.

    def onTimer(self) -> None:
        """Every few hundred milliseconds: take what the children reported, show it, and notice when they end."""
        if self.trainingJob is not None:
            self.handleTrainingEvents(self.trainingJob.poll())
        if self.generateJob is not None and not self.generateJob.state.final:
            self.generateJob.poll()
            if self.generateJob.state.final:
                self.finishGenerate()
        if self.environmentJob is not None and not self.environmentJob.state.final:
            self.environmentJob.poll()
            if self.environmentJob.state.final:
                ready, summary = environment.describe_environment(self.environmentJob)
                self.ui.environmentStatusLabel.text = summary
        if all(job is None or job.state.final for job in (self.trainingJob, self.generateJob, self.environmentJob)):
            self.timer.stop()
        self.updateButtons()

    def handleTrainingEvents(self, events: list) -> None:
        job = self.trainingJob
        for event in events:
            kind = event.get("event")
            if kind == "started":
                self.ui.trainingStatusLabel.text = _("Training on {device}.").format(device=event.get("device"))
                self.ui.trainingProgressBar.maximum = event.get("total", 0)
            elif kind == "progress":
                self.ui.trainingProgressBar.maximum = event["total"]
                self.ui.trainingProgressBar.value = event["step"]
                self.ui.trainingStatusLabel.text = _("Step {step}/{total}, {speed:.1f} images/s, {eta} left.").format(
                    step=event["step"], total=event["total"], speed=event["images_per_s"], eta=duration(event["eta_s"])
                )
                if self.lossChart is None:  # the scene was closed while training
                    self.lossChart = results.LossChart(slicer.mrmlScene)
                self.lossChart.add(event)
            elif kind == "preview" and self.preview is not None and self.preview.update(event):
                if self.preview.step == event.get("step") and self.preview.volume is not None:
                    composite = slicer.app.layoutManager().sliceWidget("Yellow").mrmlSliceCompositeNode()
                    composite.SetBackgroundVolumeID(self.preview.volume.GetID())
                    composite.SetLabelVolumeID(self.preview.label.GetID() if self.preview.label else None)
            elif kind == "notice":
                self.ui.trainingStatusLabel.text = event.get("message", "")
        if job.state.final and not self.trainingReported:
            self.trainingReported = True
            self.onTrainingEnded(job)

    def onTrainingEnded(self, job) -> None:
        if job.state == JobState.FAILED:
            self.ui.trainingStatusLabel.text = _("Training failed: {message}").format(message=job.message)
            slicer.util.errorDisplay(
                _("Training failed: {message}").format(message=job.message),
                detailedText=job.log_tail(),
                windowTitle="RaGAN",
            )
            return
        model = (job.finished or {}).get("model")
        if model:
            self._parameterNode.modelFolder = Path(model)
        done = _("Training finished.") if job.state == JobState.DONE else _("Training stopped ({message}).")
        self.ui.trainingStatusLabel.text = (
            done.format(message=job.message) + " " + _("Model: {model}").format(model=model or "-")
        )

    def updateButtons(self, caller=None, event=None) -> None:
        if not self._parameterNode:
            return
        training = self.trainingJob is not None and not self.trainingJob.state.final
        stopping = training and self.trainingJob.state == JobState.STOPPING
        self.ui.trainButton.text = _("Stop") if training else _("Train")
        self.ui.trainButton.enabled = (training and not stopping) or (not training and bool(self.cases()))
        self.ui.trainButton.toolTip = _("Stop training (saves a checkpoint)") if training else _("Start training")
        self.ui.resumeButton.enabled = not training
        generating = self.generateJob is not None and not self.generateJob.state.final
        model = folderOrNone(self._parameterNode.modelFolder)
        self.ui.generateButton.enabled = not generating and model is not None and (model / "model.json").is_file()
        self.ui.exportButton.enabled = not generating and folderOrNone(self._parameterNode.exportFolder) is not None
        checking = self.environmentJob is not None and not self.environmentJob.state.final
        self.ui.checkEnvironmentButton.enabled = not checking


#
# RaGANLogic
#


class RaGANLogic(ScriptedLoadableModuleLogic):
    """What the module does, usable without the GUI (e.g. from the Python console or a script):

    logic = RaGANLogic()
    job, run = logic.startTraining(slicer.mrmlScene, cases, {"steps": 600}, Path.home() / "RaGAN", "auto")
    job.wait(3600)                                   # or poll() from a timer, as the panel does
    job, out = logic.startGenerate(run / "model", count=16, seed=0, device="auto")
    job.wait(600)
    volume, segmentation = logic.loadGenerated(slicer.mrmlScene, job, run / "model")
    """

    def getParameterNode(self):
        return RaGANParameterNode(super().getParameterNode())

    def trainerPython(self) -> str:
        """The Python chosen in the Environment panel, else Slicer's own (PythonSlicer)."""
        chosen = qt.QSettings().value(PYTHON_SETTING, "")
        if chosen:
            return chosen
        executable = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
        bundled = Path(slicer.app.slicerHome) / "bin" / executable
        return str(bundled) if bundled.is_file() else (locations.slicer_python() or executable)

    def trainerEnvironment(self) -> dict | None:
        """Slicer's own Python needs Slicer's environment; another Python gets the one Slicer started with."""
        if qt.QSettings().value(PYTHON_SETTING, ""):
            return slicer.util.startupEnvironment()
        return None

    def startTraining(self, scene, cases, options: dict, outputFolder: Path, device: str):
        """Write the cases and spec to a new run folder and start `ragan train`; returns (job, run folder)."""
        run = locations.new_run_folder(outputFolder)
        run.mkdir(parents=True)
        try:
            exported = training_cases.export_cases(scene, cases, run)
            training_cases.write_spec(run, exported, options)
        except Exception:
            shutil.rmtree(run, ignore_errors=True)  # no half-written run folder to confuse Resume later
            raise
        job = self._job(train_arguments(run), device, run)
        return job, run

    def resumeTraining(self, runFolder: Path, device: str):
        if not (Path(runFolder) / "spec.json").is_file():
            raise ValueError(f"'{runFolder}' is not a RaGAN run folder (it has no spec.json)")
        return self._job(train_arguments(runFolder, resume=True), device, Path(runFolder))

    def startGenerate(self, modelFolder: Path, count: int, seed: int, device: str):
        """Start `ragan generate` into a new folder beside the model; returns (job, output folder)."""
        results.read_model_info(modelFolder)  # refuses a folder that is not a model, before starting anything
        out = locations.new_run_folder(Path(modelFolder).parent, "generated")
        return self._job(generate_arguments(modelFolder, count, seed, out), device, None), out

    def loadGenerated(self, scene, job, modelFolder: Path, sourceNode=None):
        """Load a finished generate job's image and label: (scalar volume, segmentation) beside the source study."""
        return results.load_generated(scene, job.finished["outputs"], modelFolder, source_node=sourceNode)

    def exportNnunet(self, target: Path, modelFolder: Path, includeReal: bool, syntheticDataset: Path | None):
        realPairs = []
        if includeReal:
            spec = Path(modelFolder).parent / "spec.json"
            if spec.is_file():
                import json

                realPairs = [
                    tuple(spec.parent / p for p in pair) for pair in json.loads(spec.read_text()).get("pairs", [])
                ]
        return dataset_export.export_nnunet(target, modelFolder, realPairs, syntheticDataset)

    def checkEnvironment(self, device: str):
        return environment.environment_check(self.trainerPython(), device, self.trainerEnvironment())

    def _job(self, arguments, device, runFolder) -> TrainerJob:
        job = TrainerJob(arguments, self.trainerPython(), runFolder, device, self.trainerEnvironment())
        job.start()
        return job


def folderOrNone(path) -> Path | None:
    """A path parameter that is set (ctkPathLineEdit gives '.' or '' when empty)."""
    return Path(path) if path is not None and str(path) not in ("", ".") else None


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def showOnlyIn(segmentation, sliceNodeID: str) -> None:
    display = segmentation.GetDisplayNode()
    if display is None:
        segmentation.CreateDefaultDisplayNodes()
        display = segmentation.GetDisplayNode()
    display.RemoveAllViewNodeIDs()
    display.AddViewNodeID(sliceNodeID)


#
# RaGANTest
#


class RaGANTest(ScriptedLoadableModuleTest):
    """Slicer runs this from Developer mode ("Reload and Test"): the whole loop on a phantom, a few steps."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_phantom_train_generate_load()

    def test_phantom_train_generate_load(self):
        self.delayDisplay("Phantom case into the scene")
        logic = RaGANLogic()
        volume, segmentation = demo_data.add_phantom_case(slicer.mrmlScene, seed=0, shape=(12, 64, 64))
        cases = [training_cases.TrainingCase(volume, segmentation)]
        self.assertEqual(training_cases.labelled_slice_count(slicer.mrmlScene, cases[0]), 12)

        self.delayDisplay("Training a few steps (the first start loads TensorFlow)")
        options = {"size": 64, "steps": 4, "batch": 4, "checkpoint_every": 2, "preview_every": 2, "intensity": "ct"}
        output = Path(slicer.app.temporaryPath) / "RaGANTest"
        job, run = logic.startTraining(slicer.mrmlScene, cases, options, output, "cpu")
        self.assertEqual(job.wait(timeout_s=600), JobState.DONE, job.message + "\n" + job.log_tail())
        self.assertTrue((run / "model" / "model.json").is_file())

        self.delayDisplay("Generating and loading")
        job, _out = logic.startGenerate(run / "model", count=3, seed=1, device="cpu")
        self.assertEqual(job.wait(timeout_s=300), JobState.DONE, job.message + "\n" + job.log_tail())
        synthetic, labels = logic.loadGenerated(slicer.mrmlScene, job, run / "model", sourceNode=volume)
        self.assertEqual(synthetic.GetImageData().GetDimensions()[2], 3)
        names = sorted(labels.GetSegmentation().GetNthSegment(i).GetName() for i in range(2))
        self.assertEqual(names, ["lesion", "organ"])
        self.delayDisplay("Test passed")
