"""RaGAN: train a GAN on a few labelled scans and load synthetic image + label slices back into the scene.

Slicer's scripted-module shape (Module, parameter node, Widget, Logic, Test). The work happens elsewhere: the Qt-free
RaGANModuleLib package (scene <-> files, the trainer child process) and, in a child process, the RaGANLib trainer.
Nothing here imports TensorFlow.
"""

import sys

if sys.version_info < (3, 10):  # noqa: UP036 (Slicer 5.8 and older load this file: one clear message)
    raise ImportError(
        f"RaGAN needs 3D Slicer 5.10 or newer (Python 3.12); this Slicer runs Python {sys.version_info[0]}."
        f"{sys.version_info[1]}. Install a current Slicer from https://download.slicer.org"
    )

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Union

import qt
import slicer
import vtk
from RaGANModuleLib import dataset_export, demo_data, environment, locations, painting, results, training_cases
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
COMMAND_SETTING = "RaGAN/TrainerCommand"  # a per-user setting like the Python, not saved in scenes shared with others


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
            "Needs 3D Slicer 5.10 or 5.12 (Python 3.12); the trainer needs TensorFlow 2.20+ and Keras 3.15+, which "
            "the module offers to install. "
            '<a href="https://github.com/RaGAN-project/SlicerRaGAN#3d-slicer">Documentation</a>.'
        )
        self.parent.acknowledgementText = _(
            "Training runs in a separate process (RaGANLib, TensorFlow/Keras) so that Slicer stays responsive."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)  # the Sample Data module exists only then


def registerSampleData() -> None:
    """The phantom demo case in the Sample Data module (category RaGAN): made on the spot, so it works offline."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="RaGAN",
        sampleName="RaGANPhantomCT",
        uris=[],  # nothing to download: customDownloader makes the case
        fileNames=[],
        nodeNames=[],
        thumbnailFileName=str(locations.MODULE_FOLDER / "Resources" / "Icons" / "RaGANPhantomCT.png"),
        customDownloader=lambda source: demo_data.add_phantom_case(slicer.mrmlScene),
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
    mode: Annotated[str, Choice(["conditional", "joint"])] = "conditional"  # as --mode: conditional models can paint

    modelFolder: Path = locations.default_output_folder()  # set to the run's model/ when training ends
    count: Annotated[int, WithinRange(1, 100000)] = 16
    generateSeed: Annotated[int, WithinRange(0, 999999)] = 0
    paintSegmentation: vtkMRMLSegmentationNode
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
        self.countedAxis = None  # the slicing axis the cases table counts slices along
        self.runFolder = None
        self.generateFolder = None
        self.generateModel = None
        self.paintJob = None
        self.paintModel = None
        self.paintCase = None  # the segmentation being painted and the volume it was drawn on
        self.paintCheck = (None, None)  # (model.json and its modification time, why painting cannot run or None)
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
        self.ui.paintButton.connect("clicked(bool)", self.onPaint)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.checkEnvironmentButton.connect("clicked(bool)", self.onCheckEnvironment)
        self.ui.installButton.connect("clicked(bool)", self.onInstallRequirements)
        self.ui.installHereButton.connect("clicked(bool)", self.onInstallRequirements)
        self.ui.choosePythonButton.connect("clicked(bool)", self.onChoosePython)
        self.ui.pythonPathLineEdit.currentPath = qt.QSettings().value(PYTHON_SETTING, "")
        self.ui.pythonPathLineEdit.connect("currentPathChanged(QString)", self.onPythonChanged)
        self.ui.trainerCommandLineEdit.text = qt.QSettings().value(COMMAND_SETTING, "")
        self.ui.trainerCommandLineEdit.connect("editingFinished()", self.onTrainerCommandChanged)
        self.ui.casesTable.horizontalHeader().setSectionResizeMode(qt.QHeaderView.Stretch)

        # Jobs report through a timer on the GUI thread: the panel never waits for a child process.
        self.timer = qt.QTimer()
        self.timer.setInterval(300)
        self.timer.connect("timeout()", self.onTimer)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Slicer calls this when the application closes: a running trainer is asked to stop."""
        self.timer.stop()
        for job in (self.trainingJob, self.generateJob, self.paintJob, self.environmentJob):
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
        self.countedAxis = self._parameterNode.axis
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
            "mode": p.mode,
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
        job = self.trainingJob or self.generateJob or self.paintJob or self.environmentJob
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

    def reportFailure(self, job, status: str) -> bool:
        """True, with the status and the child's message shown, when a generate or paint job did not finish well."""
        if job.state == JobState.DONE:
            return False
        self.ui.generateStatusLabel.text = status
        slicer.util.errorDisplay(job.message, detailedText=job.log_tail(), windowTitle="RaGAN")
        return True

    def finishGenerate(self) -> None:
        job = self.generateJob
        if self.reportFailure(job, _("Generating failed.")):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not load the synthetic slices."), waitCursor=True):
            source = self.cases()[0] if self.cases() else None
            volume, segmentation = self.logic.loadGenerated(
                slicer.mrmlScene, job.finished["outputs"], self.generateModel, source.image if source else None
            )
            axis = results.read_model_info(self.generateModel)["slice"]["axis"]
            self.showSideBySide(source, volume, segmentation, axis)
            loaded = _("Loaded '{name}' ({count} slices).").format(
                name=volume.GetName(), count=volume.GetImageData().GetDimensions()[2]
            )
            # generate's notices, e.g. that this many synthetic slices would swamp the model's training slices
            notices = [e["message"] for e in job.events if e.get("event") == "notice" and e.get("message")]
            self.ui.generateStatusLabel.text = " ".join([loaded, *notices])

    def onPaint(self) -> None:
        p = self._parameterNode
        modelFolder = folderOrNone(p.modelFolder)
        with slicer.util.tryWithErrorDisplay(_("Could not synthesize an image for the segmentation."), waitCursor=True):
            if not p.paintSegmentation:
                raise ValueError(_("Pick the segmentation to synthesize an image for."))
            self.paintJob, folder, scan = self.logic.startPaint(
                slicer.mrmlScene, p.paintSegmentation, modelFolder, p.generateSeed, p.device
            )
            self.paintModel = modelFolder
            self.paintCase = training_cases.TrainingCase(scan, p.paintSegmentation)
            self.ui.generateStatusLabel.text = _("Synthesizing an image for '{name}' (in {folder})...").format(
                name=p.paintSegmentation.GetName(), folder=folder
            )
            self.timer.start()
            self.updateButtons()

    def finishPaint(self) -> None:
        job = self.paintJob
        if self.reportFailure(job, _("Synthesizing failed.")):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not load the synthetic image."), waitCursor=True):
            volume, segmentation = self.logic.loadPainted(
                slicer.mrmlScene, job.finished["outputs"], self.paintModel, self.paintCase.image
            )
            axis = results.read_model_info(self.paintModel)["slice"]["axis"]
            self.showSideBySide(self.paintCase, volume, segmentation, axis)
            self.ui.generateStatusLabel.text = _("Loaded '{name}': a synthetic scan for '{segmentation}'.").format(
                name=volume.GetName(), segmentation=self.paintCase.label.GetName()
            )

    def paintUnavailableReason(self, modelFolder) -> str | None:
        """Why the model cannot paint a segmentation (None: it can); model.json is read again only when it changed."""
        modelJson = modelFolder / "model.json" if modelFolder else None
        key = (str(modelJson), modelJson.stat().st_mtime if modelJson and modelJson.is_file() else None)
        if self.paintCheck[0] != key:
            self.paintCheck = (key, painting.paint_unavailable_reason(modelFolder))
        return self.paintCheck[1]

    def showSideBySide(self, realCase, syntheticVolume, syntheticSegmentation, axis: str) -> None:
        """Real case on the left (Red), synthetic on the right (Yellow), each with its labels, views linked, both
        turned to the model's slicing axis (the synthetic stack shows one training-like slice at a time)."""
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        results.orient_views([layoutManager.sliceWidget(v).mrmlSliceNode() for v in ("Red", "Yellow")], axis)
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
            written, splits = self.logic.exportNnunet(
                target, modelFolder, includeReal=p.exportReal, syntheticDataset=synthetic
            )
            message = _("nnU-Net dataset written to {folder}.").format(folder=written)
            if splits is not None:
                message += " " + _(
                    "Its splits_final.json validates on real cases only: copy it into "
                    "nnUNet_preprocessed/{name}/ after nnUNetv2_plan_and_preprocess and before training."
                ).format(name=written.name)
            swamped = dataset_export.synthetic_share_warning(written, modelFolder)  # synthetic cases swamp real ones
            if swamped:
                self.ui.generateStatusLabel.text = swamped
                slicer.util.warningDisplay(message + " " + swamped)
            else:
                slicer.util.infoDisplay(message)

    # Environment panel.

    def onPythonChanged(self, path: str) -> None:
        qt.QSettings().setValue(PYTHON_SETTING, path)
        with slicer.util.WaitCursor():
            self.logic.trainerCheck(refresh=True)
        self.updateButtons()

    def onTrainerCommandChanged(self) -> None:
        qt.QSettings().setValue(COMMAND_SETTING, self.ui.trainerCommandLineEdit.text.strip())
        with slicer.util.WaitCursor():
            self.logic.trainerCheck(refresh=True)
        self.updateButtons()

    def onChoosePython(self) -> None:
        self.ui.environmentCollapsibleButton.collapsed = False
        self.ui.pythonPathLineEdit.setFocus()

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
        failed = _("Installing the requirements failed.") + " " + environment.INSTALL_HELP
        with slicer.util.tryWithErrorDisplay(failed):
            message = environment.install_requirements(testing=slicer.app.testingEnabled(), busy=self.busyDialog)
            self.ui.environmentStatusLabel.text = message
        self.logic.trainerCheck(refresh=True)
        self.onCheckEnvironment()

    @contextlib.contextmanager
    def busyDialog(self):
        """A dialog that says what is happening while Slicer 5.10's pip_install blocks the window."""
        dialog = qt.QProgressDialog(
            _("Installing TensorFlow and Keras (about 600 MB); this takes a few minutes.")
            + "\n"
            + environment.INSTALL_HELP,
            "",
            0,
            0,
            slicer.util.mainWindow(),
        )
        dialog.setWindowTitle("RaGAN")
        dialog.setCancelButton(None)  # pip cannot be interrupted safely half-way
        dialog.setWindowModality(qt.Qt.WindowModal)
        dialog.show()
        slicer.app.processEvents()
        try:
            with slicer.util.WaitCursor():
                yield
        finally:
            dialog.close()

    # Jobs.

    def onTimer(self) -> None:
        """Every few hundred milliseconds: take what the children reported, show it, and notice when they end."""
        if self.trainingJob is not None:
            self.handleTrainingEvents(self.trainingJob.poll())
        if self.generateJob is not None and not self.generateJob.state.final:
            self.generateJob.poll()
            if self.generateJob.state.final:
                self.finishGenerate()
        if self.paintJob is not None and not self.paintJob.state.final:
            self.paintJob.poll()
            if self.paintJob.state.final:
                self.finishPaint()
        if self.environmentJob is not None and not self.environmentJob.state.final:
            self.environmentJob.poll()
            if self.environmentJob.state.final:
                ready, summary = environment.describe_environment(self.environmentJob)
                self.ui.environmentStatusLabel.text = summary
        jobs = (self.trainingJob, self.generateJob, self.paintJob, self.environmentJob)
        if all(job is None or job.state.final for job in jobs):
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
        if self._parameterNode.axis != self.countedAxis:  # the slicing axis changed: count its slices
            self.updateCasesTable()
            return  # updateCasesTable ends by calling this again
        training = self.trainingJob is not None and not self.trainingJob.state.final
        stopping = training and self.trainingJob.state == JobState.STOPPING
        trainer = self.logic.trainerCheck()  # cached: asks the trainer's Python only when it changed
        self.ui.trainerNotReadyWidget.visible = not trainer.ready
        self.ui.trainerNotReadyLabel.text = trainer.reason
        self.ui.trainButton.text = _("Stop") if training else _("Train")
        self.ui.trainButton.enabled = (training and not stopping) or (
            not training and bool(self.cases()) and trainer.ready
        )
        self.ui.trainButton.toolTip = (
            _("Stop training (saves a checkpoint)")
            if training
            else (_("Start training") if trainer.ready else trainer.reason)
        )
        self.ui.resumeButton.enabled = not training and trainer.ready
        generating = self.generateJob is not None and not self.generateJob.state.final
        model = folderOrNone(self._parameterNode.modelFolder)
        self.ui.generateButton.enabled = (
            not generating and model is not None and (model / "model.json").is_file() and trainer.ready
        )
        paintingNow = self.paintJob is not None and not self.paintJob.state.final
        cannotPaint = (
            self.paintUnavailableReason(model)
            or (None if trainer.ready else trainer.reason)
            or (
                None if self._parameterNode.paintSegmentation else _("pick the segmentation to synthesize an image for")
            )
        )
        self.ui.paintButton.enabled = not paintingNow and cannotPaint is None
        self.ui.paintButton.toolTip = (
            _("Paint a synthetic scan for the chosen segmentation on its volume's grid, shown beside that volume")
            if cannotPaint is None
            else _("Not available: {reason}").format(reason=cannotPaint)
        )
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
    volume, segmentation = logic.loadGenerated(slicer.mrmlScene, job.finished["outputs"], run / "model")
    # A model trained with {"mode": "conditional"} paints a scan for a segmentation drawn on a volume, on its grid:
    job, folder, scan = logic.startPaint(slicer.mrmlScene, segmentationNode, run / "model", seed=0, device="auto")
    job.wait(600)
    painted, copy = logic.loadPainted(slicer.mrmlScene, job.finished["outputs"], run / "model", scan)
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

    def trainerCommand(self) -> list[str]:
        """The trainer command of the Environment panel ([]: the trainer Python runs `-m RaGANLib` here)."""
        return environment.trainer_command(qt.QSettings().value(COMMAND_SETTING, ""))

    def trainerCheck(self, refresh: bool = False) -> environment.TrainerCheck:
        """Whether the trainer's Python (or command) has the TensorFlow and Keras RaGAN needs (cached; a moment the
        first time)."""
        try:
            command = self.trainerCommand()
        except environment.TrainerNotReady as error:
            return environment.TrainerCheck(False, str(error), {})
        return environment.check_trainer_python(self.trainerPython(), self.trainerEnvironment(), refresh, command)

    def requireTrainer(self) -> None:
        """Raise TrainerNotReady with the reason when the trainer's Python cannot run RaGAN; nothing is written."""
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
        job = self._job(train_arguments(run), device, run)
        return job, run

    def resumeTraining(self, runFolder: Path, device: str):
        if not (Path(runFolder) / "spec.json").is_file():
            raise ValueError(f"'{runFolder}' is not a RaGAN run folder (it has no spec.json)")
        self.requireTrainer()
        return self._job(train_arguments(runFolder, resume=True), device, Path(runFolder))

    def startGenerate(self, modelFolder: Path, count: int, seed: int, device: str):
        """Start `ragan generate` into a new folder beside the model; returns (job, output folder)."""
        self.requireTrainer()
        # Refuses a folder that is not a model, or one the trainer's Keras cannot load, before starting anything.
        results.read_model_info(modelFolder, keras=self.trainerCheck().versions.get("keras"))
        out = locations.new_run_folder(Path(modelFolder).parent, "generated")
        return self._job(generate_arguments(modelFolder, count, seed, out), device, None), out

    def startPaint(self, scene, segmentation, modelFolder: Path, seed: int, device: str):
        """Write the segmentation (on the grid of the volume it was drawn on) into a new `painted-NNN` folder beside
        the model and start `ragan generate --labels`; returns (job, that folder, the volume it was drawn on)."""
        self.requireTrainer()
        reason = painting.paint_unavailable_reason(modelFolder)  # a joint model, or no model: nothing is written
        if reason:
            raise ValueError(reason)
        results.read_model_info(modelFolder, keras=self.trainerCheck().versions.get("keras"))
        arguments, folder, scan = painting.prepare_painting(scene, segmentation, modelFolder, seed)
        return self._job(arguments, device, None), folder, scan

    def loadPainted(self, scene, outputs: dict, modelFolder: Path, sourceNode=None):
        """Load a finished paint job's volume and its segmentation (a copy of the one painted) beside the source
        study: (scalar volume, segmentation)."""
        return painting.load_painted(scene, outputs, modelFolder, source_node=sourceNode)

    def loadGenerated(self, scene, outputs: dict, modelFolder: Path, sourceNode=None):
        """Load generated image and label files (a finished generate job's `outputs`): (scalar volume, segmentation)
        beside the source study."""
        return results.load_generated(scene, outputs, modelFolder, source_node=sourceNode)

    def exportNnunet(self, target: Path, modelFolder: Path, includeReal: bool, syntheticDataset: Path | None):
        """Real cases (the run's) and synthetic ones into an nnU-Net dataset: returns (folder, splits_final.json)."""
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
        return environment.environment_check(
            self.trainerPython(), device, self.trainerEnvironment(), self.trainerCommand()
        )

    def _job(self, arguments, device, runFolder) -> TrainerJob:
        job = TrainerJob(
            arguments, self.trainerPython(), runFolder, device, self.trainerEnvironment(), prefix=self.trainerCommand()
        )
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
    """Slicer runs this from Developer mode ("Reload and Test") and on the extension build machines, which have no
    TensorFlow. The TensorFlow-free parts always run (scene export, a stored synthetic result loaded, nnU-Net export);
    the training round trip runs only where the trainer's Python has TensorFlow and Keras. The last message says
    which parts ran."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        ran = []
        for name, part in (
            ("scene export", self.test_scene_export),
            ("stored synthetic result loaded and exported to nnU-Net", self.test_stored_result_loads_and_exports),
            ("segmentation written for a conditional model, stored painted scan loaded", self.test_stored_painting),
        ):
            self.setUp()
            part()
            ran.append(name)
        check = RaGANLogic().trainerCheck()
        skipped = ""
        if check.ready:
            self.setUp()
            self.test_phantom_train_generate_load()
            ran.append("training round trip")
        else:
            skipped = f" Not run: the training round trip, because {check.reason}"
        self.delayDisplay("RaGAN self-test passed. Parts run: " + "; ".join(ran) + "." + skipped)

    def phantomCases(self, shape=(12, 64, 64)):
        volume, segmentation = demo_data.add_phantom_case(slicer.mrmlScene, seed=0, shape=shape)
        return [training_cases.TrainingCase(volume, segmentation)]

    def outputFolder(self) -> Path:
        """A new folder in Slicer's temporary folder for each part."""
        return Path(tempfile.mkdtemp(prefix="RaGANTest-", dir=slicer.app.temporaryPath))

    def test_scene_export(self):
        self.delayDisplay("Phantom case from the scene to a run folder")
        cases = self.phantomCases()
        self.assertEqual(training_cases.labelled_slice_count(slicer.mrmlScene, cases[0], "axial"), 12)
        run = self.outputFolder() / "run-001"
        exported = training_cases.export_cases(slicer.mrmlScene, cases, run)
        training_cases.write_spec(run, exported, {"size": 64, "steps": 4, "intensity": "ct"})
        self.assertEqual(exported.label_names, {1: "organ", 2: "lesion", 3: "vessel"})
        self.assertTrue(all((run / path).is_file() for pair in exported.pairs for path in pair))
        self.assertTrue((run / "spec.json").is_file())

    def test_stored_result_loads_and_exports(self):
        """A synthetic result stored as generate writes it (slices of the phantom stand in for synthetic ones)."""
        import json

        import SimpleITK as sitk

        self.delayDisplay("Loading a stored synthetic result and exporting an nnU-Net dataset")
        cases = self.phantomCases()
        output = self.outputFolder()
        run = output / "run-001"
        exported = training_cases.export_cases(slicer.mrmlScene, cases, run)
        training_cases.write_spec(run, exported, {"size": 64, "intensity": "ct"})
        image, label = (sitk.ReadImage(str(run / path)) for path in exported.pairs[0])
        self.storedModel(run / "model", exported, image)
        stored = output / "generated-001"
        stored.mkdir()
        outputs = {"image": str(stored / "synthetic_image.nrrd"), "label": str(stored / "synthetic_label.nrrd")}
        sitk.WriteImage(image[:, :, 3:6], outputs["image"])
        sitk.WriteImage(label[:, :, 3:6], outputs["label"])

        logic = RaGANLogic()
        synthetic, labels = logic.loadGenerated(slicer.mrmlScene, outputs, run / "model", cases[0].image)
        self.assertEqual(synthetic.GetImageData().GetDimensions(), (64, 64, 3))
        names = sorted(labels.GetSegmentation().GetNthSegment(i).GetName() for i in range(3))
        self.assertEqual(names, ["lesion", "organ", "vessel"])

        dataset, splits = logic.exportNnunet(output / "Dataset990_RaGANTest", run / "model", True, None)
        self.assertIsNone(splits, "real cases only: nnU-Net's own folds are right")
        description = json.loads((dataset / "dataset.json").read_text())
        self.assertEqual(description["labels"], {"background": 0, "organ": 1, "lesion": 2, "vessel": 3})
        self.assertEqual(description["numTraining"], 1)

    def storedModel(self, folder: Path, exported, image, **fields) -> Path:
        """A model folder's model.json for the exported phantom case (no generator: nothing here samples)."""
        import json

        classes = [{"index": 0, "value": 0, "name": "background", "color": [0.0, 0.0, 0.0]}] + [
            {"index": i, "value": v, "name": exported.label_names[v], "color": exported.label_colors[v]}
            for i, v in enumerate(sorted(exported.label_names), start=1)
        ]
        spacing = image.GetSpacing()
        model = {
            "format": 1,
            "generator": "generator.keras",
            "latent_size": 128,
            "classes": classes,
            "modality": "ct",
            "intensity": {"low": -1000.0, "high": 1000.0},
            "slice": {"size": 64, "spacing": [spacing[1], spacing[0]], "thickness": spacing[2], "axis": "axial"},
            "training": {"cases": 1, "slices": 12, "steps": 4, "batch": 4, "seed": 0},
            **fields,
        }
        folder.mkdir(parents=True)
        (folder / "model.json").write_text(json.dumps(model))
        return folder

    def test_stored_painting(self):
        """A segmentation written for a conditional model and the scan `generate --labels` would paint for it, stored
        as it writes it (the phantom's own image stands in for the painted one), loaded on the segmentation's grid."""
        import shutil

        import SimpleITK as sitk

        self.delayDisplay("Writing a segmentation for a conditional model and loading a stored painted scan")
        cases = self.phantomCases()
        run = self.outputFolder() / "run-001"
        exported = training_cases.export_cases(slicer.mrmlScene, cases, run)
        image = sitk.ReadImage(str(run / exported.pairs[0][0]))
        model = self.storedModel(run / "model", exported, image, format=2, mode="conditional", labels="labels.npz")
        arguments, folder, scan = painting.prepare_painting(slicer.mrmlScene, cases[0].label, model, seed=0)
        self.assertEqual(scan.GetID(), cases[0].image.GetID(), "painted on the volume the segmentation was drawn on")
        self.assertEqual(arguments[:4], ["generate", str(model), "--labels", str(folder / "labels")])
        painted = folder / "painted"
        outputs = {kind: str(painted / kind) for kind in ("images", "labels")}
        for kind in outputs:
            (painted / kind).mkdir(parents=True)
        shutil.copy(folder / "labels" / "segmentation.nrrd", painted / "labels")
        sitk.WriteImage(image, str(painted / "images" / "segmentation.nrrd"))

        synthetic, labels = RaGANLogic().loadPainted(slicer.mrmlScene, outputs, model, scan)
        self.assertEqual(synthetic.GetImageData().GetDimensions(), scan.GetImageData().GetDimensions())
        names = sorted(labels.GetSegmentation().GetNthSegment(i).GetName() for i in range(3))
        self.assertEqual(names, ["lesion", "organ", "vessel"])

    def test_phantom_train_generate_load(self):
        self.delayDisplay("Training a few steps on a phantom case (the first start loads TensorFlow)")
        logic = RaGANLogic()
        cases = self.phantomCases()
        options = {"size": 64, "steps": 4, "batch": 4, "checkpoint_every": 2, "preview_every": 2, "intensity": "ct"}
        job, run = logic.startTraining(slicer.mrmlScene, cases, options, self.outputFolder(), "cpu")
        self.assertEqual(job.wait(timeout_s=600), JobState.DONE, job.message + "\n" + job.log_tail())
        self.assertTrue((run / "model" / "model.json").is_file())

        self.delayDisplay("Generating and loading")
        job, _out = logic.startGenerate(run / "model", count=3, seed=1, device="cpu")
        self.assertEqual(job.wait(timeout_s=300), JobState.DONE, job.message + "\n" + job.log_tail())
        outputs = job.finished["outputs"]
        synthetic, labels = logic.loadGenerated(slicer.mrmlScene, outputs, run / "model", cases[0].image)
        self.assertEqual(synthetic.GetImageData().GetDimensions()[2], 3)
        names = sorted(labels.GetSegmentation().GetNthSegment(i).GetName() for i in range(3))
        self.assertEqual(names, ["lesion", "organ", "vessel"])
        self.assertTrue(Path(outputs["segmentation"]).is_file())
