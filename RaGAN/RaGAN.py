"""RaGAN: train a GAN on a few labelled scans and load synthetic image + label slices back into the scene.

Slicer's scripted-module shape (Module, parameter node, Widget, Logic, Test). The work happens elsewhere: the Qt-free
RaGANModuleLib package (its logic.py starts the jobs and loads results, panel_actions.py is what each button does,
panel.py turns jobs' events into what the panel shows, self_test.py is the self-test) and, in a child process, the
RaGANLib trainer. The widget here only wires Qt to them. Nothing here imports TensorFlow.
"""

import sys

if sys.version_info < (3, 10):  # noqa: UP036 (Slicer 5.8 and older load this file: one clear message)
    raise ImportError(
        f"RaGAN needs 3D Slicer 5.10 or newer (Python 3.12); this Slicer runs Python {sys.version_info[0]}."
        f"{sys.version_info[1]}. Install a current Slicer from https://download.slicer.org"
    )

import contextlib
from pathlib import Path
from typing import Annotated, Union

import qt
import slicer
import vtk
from RaGANModuleLib import demo_data, environment, locations, panel, results, training_cases, training_options
from RaGANModuleLib.logic import ModuleLogic, Trainer, trainer_from_settings
from RaGANModuleLib.panel_actions import NeedsInput, PanelActions
from RaGANModuleLib.self_test import SelfTest
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper, parameterPack
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
    """The phantom demo case in the Sample Data module, which exists only once Slicer has started."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(**demo_data.sample_data_source(lambda: slicer.mrmlScene))


#
# RaGANParameterNode
#


@parameterPack
class RaGANCase:
    """One training case: an image volume and its label (a segmentation or a labelmap volume)."""

    image: vtkMRMLScalarVolumeNode
    label: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]  # noqa: UP007 (the wrapper reads typing.Union)


@parameterNodeWrapper
@training_options.with_training_options(
    Choice, WithinRange
)  # size, steps, batch, axis, ... as RaGANLib's TrainSpec has them
class RaGANParameterNode:
    """The module's settings in the scene (saved with it); the .ui widgets bind to these by SlicerParameterName. The
    training options (TrainSpec fields with panel=True) are added with their choices, ranges and defaults."""

    imageVolume: vtkMRMLScalarVolumeNode
    labelNode: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]  # noqa: UP007 (the wrapper reads typing.Union)
    cases: list[RaGANCase]

    preset: Annotated[str, Choice(list(training_options.PRESETS))] = training_options.DEFAULT_PRESET
    outputFolder: Path = locations.default_output_folder()
    device: Annotated[str, Choice(["auto", "cpu"])] = "auto"

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
    """Slicer makes this when the user first opens the module: Qt signals to the panel's actions
    (RaGANModuleLib.panel_actions), and the state of their job views into Qt widgets."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.actions = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.countedAxis = None  # the slicing axis the cases table counts slices along

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RaGAN.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RaGANLogic()
        self.actions = PanelActions(self.logic, slicer.mrmlScene, _)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        for button, slot in (
            ("addCaseButton", self.onAddCase),
            ("addAllCasesButton", self.onAddAllCases),
            ("removeCaseButton", self.onRemoveCases),
            ("demoDataButton", self.onDemoData),
            ("trainButton", self.onTrainOrStop),
            ("resumeButton", self.onResume),
            ("showLogButton", self.onShowLog),
            ("generateButton", self.onGenerate),
            ("paintButton", self.onPaint),
            ("exportButton", self.onExport),
            ("checkEnvironmentButton", self.onCheckEnvironment),
            ("installButton", self.onInstallRequirements),
            ("installHereButton", self.onInstallRequirements),
            ("choosePythonButton", self.onChoosePython),
        ):
            getattr(self.ui, button).connect("clicked(bool)", slot)
        self.ui.presetComboBox.connect("activated(int)", self.onPresetChanged)  # the user picked one
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
        self.actions.stopAll()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        """The panel is hidden: its widgets stop following the parameter node, which the jobs still update."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.actions.training is not None:
            self.actions.training.forgetScene()
        self.onSceneEndImport(caller, event)

    def onSceneEndImport(self, caller, event) -> None:
        """Also after a scene was opened: its parameter node (an older RaGAN's too) is the one shown."""
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

    @contextlib.contextmanager
    def attempt(self, failed: str):
        """What a button does: a missing input is a warning, any other failure an error dialog headed `failed` (and
        raised on, as Slicer's tryWithErrorDisplay does, into Slicer's log)."""
        missing = None
        with slicer.util.tryWithErrorDisplay(failed, waitCursor=True):
            try:
                yield
            except NeedsInput as error:
                missing = error
        if missing is not None:  # after the wait cursor is gone
            slicer.util.warningDisplay(str(missing))

    # Inputs panel.

    def cases(self) -> list:
        """The training cases whose nodes are still in the scene."""
        return [case for case in self._parameterNode.cases if case.image and case.label]

    def addCases(self, cases) -> None:
        """Add cases (anything with .image and .label) not in the list yet."""
        new = [RaGANCase(image=case.image, label=case.label) for case in cases]
        self._parameterNode.cases = panel.with_cases(self.cases(), new)
        self.updateCasesTable()

    def onAddCase(self) -> None:
        with self.attempt(_("Could not add the case.")):
            self.addCases([self.actions.chosenCase(self._parameterNode.imageVolume, self._parameterNode.labelNode)])

    def onAddAllCases(self) -> None:
        with self.attempt(_("Could not add the cases.")):
            self.addCases(self.actions.labelledCases(self.cases()))

    def onRemoveCases(self) -> None:
        rows = {index.row() for index in self.ui.casesTable.selectionModel().selectedRows()}
        self._parameterNode.cases = [c for row, c in enumerate(self.cases()) if row not in rows]
        self.updateCasesTable()

    def onDemoData(self) -> None:
        with self.attempt(_("Could not make the demo case.")):
            volume, segmentation = demo_data.add_phantom_case(slicer.mrmlScene, seed=len(self.cases()))
            self.addCases([RaGANCase(image=volume, label=segmentation)])
            self._parameterNode.imageVolume = volume
            self._parameterNode.labelNode = segmentation
            self._parameterNode.intensity = "ct"
            slicer.util.setSliceViewerLayers(background=volume, fit=True)

    def updateCasesTable(self) -> None:
        self.countedAxis = self._parameterNode.axis
        rows, summary = panel.cases_table(slicer.mrmlScene, self.cases(), self.countedAxis, _)
        self.ui.casesTable.setRowCount(len(rows))
        for row, texts in enumerate(rows):
            for column, text in enumerate(texts):
                self.ui.casesTable.setItem(row, column, qt.QTableWidgetItem(text))
        self.ui.casesSummaryLabel.text = summary
        self.updateButtons()

    # Training panel.

    def onPresetChanged(self, index: int) -> None:
        for name, value in training_options.preset_options(self.ui.presetComboBox.currentText).items():
            setattr(self._parameterNode, name, value)

    def onTrainOrStop(self) -> None:
        p = self._parameterNode
        with self.attempt(_("Could not start training.")):
            options = training_options.spec_options(p)
            if self.actions.trainOrStop(self.cases(), options, p.outputFolder, p.device):
                self.showTraining()
            self.watch()

    def onResume(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Run folder to resume"), str(self._parameterNode.outputFolder)
        )
        if folder:
            with self.attempt(_("Could not resume the run.")):
                self.actions.resume(folder, self._parameterNode.device)
                self.showTraining()
                self.watch()

    def showTraining(self) -> None:
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotView)
        slicer.modules.plots.logic().ShowChartInLayout(self.actions.training.lossChart.chart)

    def onShowLog(self) -> None:
        text = self.actions.logTail()
        slicer.util.infoDisplay(_("The last lines of the trainer's log."), detailedText=text, windowTitle="RaGAN")

    # Generate panel.

    def onGenerate(self) -> None:
        p = self._parameterNode
        with self.attempt(_("Could not start generating.")):
            self.actions.generate(p.modelFolder, p.count, p.generateSeed, p.device, self.cases())
            self.watch()

    def onPaint(self) -> None:
        p = self._parameterNode
        with self.attempt(_("Could not synthesize an image for the segmentation.")):
            self.actions.paint(p.paintSegmentation, p.modelFolder, p.generateSeed, p.device)
            self.watch()

    def showResult(self, view) -> None:
        """A generate or paint job ended well: its volume and segmentation loaded beside the real case it was made
        for, in the views."""
        with self.attempt(_("Could not load the synthetic result.")):
            case, volume, segmentation, axis = self.actions.load(view)
            results.show_side_by_side(slicer.app.layoutManager(), case, volume, segmentation, axis)

    def onExport(self) -> None:
        p = self._parameterNode
        with self.attempt(_("Could not export the nnU-Net dataset.")):
            message, swamped = self.actions.export(p.exportFolder, p.modelFolder, p.exportReal, p.exportSynthetic)
            if swamped:  # synthetic cases would swamp the real ones
                self.ui.generateStatusLabel.text = swamped
                slicer.util.warningDisplay(message + " " + swamped)
            else:
                slicer.util.infoDisplay(message)

    # Environment panel.

    def onPythonChanged(self, path: str) -> None:
        qt.QSettings().setValue(PYTHON_SETTING, path)
        self.recheckTrainer()

    def onTrainerCommandChanged(self) -> None:
        qt.QSettings().setValue(COMMAND_SETTING, self.ui.trainerCommandLineEdit.text.strip())
        self.recheckTrainer()

    def recheckTrainer(self) -> None:
        with slicer.util.WaitCursor():
            self.logic.trainerCheck(refresh=True)
        self.updateButtons()

    def onChoosePython(self) -> None:
        self.ui.environmentCollapsibleButton.collapsed = False
        self.ui.pythonPathLineEdit.setFocus()

    def onCheckEnvironment(self) -> None:
        self.actions.check(self._parameterNode.device)
        self.watch()

    def onInstallRequirements(self) -> None:
        if not slicer.util.confirmOkCancelDisplay(_(environment.INSTALL_QUESTION), windowTitle="RaGAN"):
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
        text = _("Installing TensorFlow and Keras (about 600 MB); this takes a few minutes.")
        dialog = qt.QProgressDialog(text + "\n" + environment.INSTALL_HELP, "", 0, 0, slicer.util.mainWindow())
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

    def watch(self) -> None:
        self.showJobs()
        self.timer.start()

    def onTimer(self) -> None:
        """Every few hundred milliseconds: the views take what the children reported; ended jobs are dealt with."""
        for view in self.actions.poll():
            if view.error:
                slicer.util.errorDisplay(view.error, detailedText=view.job.log_tail(), windowTitle="RaGAN")
            elif view is self.actions.training:
                if view.model and self._parameterNode:  # None while the scene closes
                    self._parameterNode.modelFolder = view.model
            elif view is not self.actions.checking:
                self.showResult(view)
        if not self.actions.running:
            self.timer.stop()
        self.showJobs()

    def showJobs(self) -> None:
        """The views' state into the panel's labels, progress bar and the preview's slice view."""
        for name, text in self.actions.statusTexts().items():
            getattr(self.ui, name).text = text
        training = self.actions.training
        if training is not None:
            self.ui.trainingProgressBar.maximum, self.ui.trainingProgressBar.value = training.total, training.step
            preview = training.takePreview()
            if preview is not None:
                composite = slicer.app.layoutManager().sliceWidget("Yellow").mrmlSliceCompositeNode()
                composite.SetBackgroundVolumeID(preview[0].GetID())
                composite.SetLabelVolumeID(preview[1].GetID() if preview[1] else None)
        self.updateButtons()

    def updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if not p:
            return
        if p.axis != self.countedAxis:  # the slicing axis changed: count its slices
            self.updateCasesTable()
            return  # updateCasesTable ends by calling this again
        trainer = self.logic.trainerCheck()  # cached: asks the trainer's Python only when it changed
        self.ui.trainerNotReadyWidget.visible = not trainer.ready
        self.ui.trainerNotReadyLabel.text = trainer.reason
        states = self.actions.buttons(trainer, bool(self.cases()), p.modelFolder, p.paintSegmentation, p.exportFolder)
        for name, state in states.items():
            button = getattr(self.ui, name)
            button.enabled = state.enabled
            if state.text is not None:
                button.text = state.text
            if state.toolTip is not None:
                button.toolTip = state.toolTip


#
# RaGANLogic
#


def settingsTrainer() -> Trainer:
    """The trainer the Environment panel's settings describe (per user, not saved in scenes shared with others)."""
    settings = qt.QSettings()
    return trainer_from_settings(
        settings.value(PYTHON_SETTING, ""),
        settings.value(COMMAND_SETTING, ""),
        slicer.app.slicerHome,
        slicer.util.startupEnvironment,
    )


class RaGANLogic(ModuleLogic, ScriptedLoadableModuleLogic):
    """What the module does, usable without the GUI (from the Python console or a script), with the trainer of the
    Environment panel; see RaGANModuleLib/logic.py for the calls:

    logic = RaGANLogic()
    job, run = logic.startTraining(slicer.mrmlScene, cases, {"steps": 600}, Path.home() / "RaGAN", "auto")
    """

    def __init__(self) -> None:
        ModuleLogic.__init__(self, settingsTrainer)
        ScriptedLoadableModuleLogic.__init__(self)  # which calls super().__init__(): ModuleLogic comes first

    def getParameterNode(self):
        """The module's parameter node; a scene saved by an older RaGAN gives its case list to it (once)."""
        node = super().getParameterNode()
        parameters = RaGANParameterNode(node)
        old = [RaGANCase(image=case.image, label=case.label) for case in training_cases.take_old_scene_cases(node)]
        if old:
            parameters.cases = panel.with_cases(list(parameters.cases), old)
        return parameters


#
# RaGANTest
#


class RaGANTest(SelfTest, ScriptedLoadableModuleTest):
    """The self-test of RaGANModuleLib/self_test.py with the trainer of the Environment panel."""

    def logic(self) -> ModuleLogic:
        return RaGANLogic()
