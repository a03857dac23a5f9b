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
import functools
from typing import Union

import qt
import slicer
import vtk
from RaGANModuleLib import demo_data, environment, results, training_cases, training_options
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
@training_options.with_panel_values(Choice, WithinRange)  # preset, folders, count, ... and TrainSpec's panel options
class RaGANParameterNode:
    """The module's settings in the scene (saved with it); the .ui widgets bind to these by SlicerParameterName. The
    node fields are declared here; the values (RaGANModuleLib/training_options.py) are added with their choices,
    ranges and defaults."""

    imageVolume: vtkMRMLScalarVolumeNode
    labelNode: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]  # noqa: UP007 (the wrapper reads typing.Union)
    cases: list[RaGANCase]
    paintSegmentation: vtkMRMLSegmentationNode


#
# RaGANWidget
#


class RaGANWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Slicer makes this when the user first opens the module: Qt signals to the panel's actions
    (RaGANModuleLib.panel_actions), and the state they decide into Qt widgets."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.actions = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RaGAN.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RaGANLogic()
        self.actions = actions = PanelActions(self.logic, slicer.mrmlScene, _, case=RaGANCase)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        # The buttons: with the heading of its error dialog, an action on the parameter node (see `press`); without
        # one, a slot of its own.
        for button, failed, action in (
            ("addCaseButton", _("Could not add the case."), actions.addChosenCase),
            ("addAllCasesButton", _("Could not add the cases."), actions.addLabelledCases),
            ("removeCaseButton", _("Could not remove the cases."), self.removeSelectedCases),
            ("demoDataButton", _("Could not make the demo case."), self.addDemoCase),
            ("trainButton", _("Could not start training."), self.trainOrStop),
            ("resumeButton", None, self.onResume),
            ("showLogButton", None, self.onShowLog),
            (
                "generateButton",
                _("Could not start generating."),
                lambda p: actions.generate(
                    p.modelFolder, p.count, p.generateSeed, p.device, actions.cases(p), p.addRare
                ),
            ),
            (
                "paintButton",
                _("Could not synthesize an image for the segmentation."),
                lambda p: actions.paint(p.paintSegmentation, p.modelFolder, p.generateSeed, p.device),
            ),
            ("exportButton", _("Could not export the nnU-Net dataset."), self.export),
            ("checkEnvironmentButton", _("Could not check the trainer."), lambda p: actions.check(p.device)),
            ("installButton", None, self.onInstallRequirements),
            ("installHereButton", None, self.onInstallRequirements),
            ("choosePythonButton", None, self.onChoosePython),
        ):
            getattr(self.ui, button).connect(
                "clicked()", functools.partial(self.press, failed, action) if failed else action
            )
        self.ui.presetComboBox.connect("activated(int)", self.onPresetChanged)  # the user picked one
        self.ui.pythonPathLineEdit.currentPath = qt.QSettings().value(PYTHON_SETTING, "")
        self.ui.pythonPathLineEdit.connect("currentPathChanged(QString)", self.onTrainerChanged)
        self.ui.trainerCommandLineEdit.text = qt.QSettings().value(COMMAND_SETTING, "")
        self.ui.trainerCommandLineEdit.connect("editingFinished()", self.onTrainerChanged)
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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.showState)

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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.showState)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.showState)
            self.actions.tableKey = None  # a new node: its cases table is filled anew
            self.showState()

    def press(self, failed: str, action) -> None:
        """What a button does: `action(parameter node)`. A missing input is a warning, any other failure an error
        dialog headed `failed` (and raised on, as Slicer's tryWithErrorDisplay does, into Slicer's log). The jobs it
        started are watched."""
        missing = None
        with slicer.util.tryWithErrorDisplay(failed, waitCursor=True):
            try:
                action(self._parameterNode)
            except NeedsInput as error:
                missing = error
        if missing is not None:  # after the wait cursor is gone
            slicer.util.warningDisplay(str(missing))
        self.watch()

    # Inputs panel.

    def removeSelectedCases(self, p) -> None:
        self.actions.removeCases(p, {index.row() for index in self.ui.casesTable.selectionModel().selectedRows()})

    def addDemoCase(self, p) -> None:
        slicer.util.setSliceViewerLayers(background=self.actions.addDemoCase(p), fit=True)

    # Training panel.

    def onPresetChanged(self, index: int) -> None:
        training_options.apply_preset(self._parameterNode, self.ui.presetComboBox.currentText)

    def trainOrStop(self, p) -> None:
        view = self.actions.trainOrStop(
            self.actions.cases(p), training_options.spec_options(p), p.outputFolder, p.device
        )
        if view is not None:  # started, not stopped
            self.showTraining(view)

    def onResume(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Run folder to resume"), str(self._parameterNode.outputFolder)
        )
        if folder:
            self.press(
                _("Could not resume the run."), lambda p: self.showTraining(self.actions.resume(folder, p.device))
            )

    def showTraining(self, view) -> None:
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotView)
        slicer.modules.plots.logic().ShowChartInLayout(view.lossChart.chart)

    def onShowLog(self) -> None:
        text = self.actions.logTail()
        slicer.util.infoDisplay(_("The last lines of the trainer's log."), detailedText=text, windowTitle="RaGAN")

    # Generate panel.

    def showResult(self, view) -> None:
        """A generate or paint job ended well: its volume and segmentation loaded beside the real case it was made
        for, in the views."""
        with slicer.util.tryWithErrorDisplay(_("Could not load the synthetic result."), waitCursor=True):
            case, volume, segmentation, axis = self.actions.load(view)
            results.show_side_by_side(slicer.app.layoutManager(), case, volume, segmentation, axis)

    def export(self, p) -> None:
        message, swamped = self.actions.export(p.exportFolder, p.modelFolder, p.exportReal, p.exportSynthetic)
        if swamped:  # synthetic cases would swamp the real ones
            slicer.util.warningDisplay(message + " " + swamped)
        else:
            slicer.util.infoDisplay(message)

    # Environment panel.

    def onTrainerChanged(self, *_signalArguments) -> None:
        """The trainer's Python or command was changed: kept in the user's settings, and asked what it has."""
        qt.QSettings().setValue(PYTHON_SETTING, self.ui.pythonPathLineEdit.currentPath)
        qt.QSettings().setValue(COMMAND_SETTING, self.ui.trainerCommandLineEdit.text.strip())
        with slicer.util.WaitCursor():
            self.logic.trainerCheck(refresh=True)
        self.showState()

    def onChoosePython(self) -> None:
        self.ui.environmentCollapsibleButton.collapsed = False
        self.ui.pythonPathLineEdit.setFocus()

    def onInstallRequirements(self) -> None:
        if not slicer.util.confirmOkCancelDisplay(_(environment.INSTALL_QUESTION), windowTitle="RaGAN"):
            return
        failed = _("Installing the requirements failed.") + " " + environment.INSTALL_HELP
        with slicer.util.tryWithErrorDisplay(failed):
            message = environment.install_requirements(testing=slicer.app.testingEnabled(), busy=self.busyDialog)
            self.ui.environmentStatusLabel.text = message
        self.logic.trainerCheck(refresh=True)
        self.actions.check(self._parameterNode.device)
        self.watch()

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
        """The jobs' state into the panel; the timer runs while any job does."""
        self.showState()
        if self.actions.running:
            self.timer.start()

    def onTimer(self) -> None:
        """Every few hundred milliseconds: the views take what the children reported; ended jobs are dealt with."""
        for view in self.actions.poll(self._parameterNode):
            if view.error:
                slicer.util.errorDisplay(view.error, detailedText=view.job.log_tail(), windowTitle="RaGAN")
            elif view in (self.actions.generating, self.actions.painting):
                self.showResult(view)
        if not self.actions.running:
            self.timer.stop()
        self.showState()

    def showState(self, caller=None, event=None) -> None:
        """What the actions decide into the panel's widgets: the cases table when it changed, texts, progress, button
        states, and a new preview in the Yellow slice view."""
        p = self._parameterNode
        if not p:
            return
        table = self.actions.casesTable(p)
        if table is not None:
            rows, self.ui.casesSummaryLabel.text = table
            self.ui.casesTable.setRowCount(len(rows))
            for row, texts in enumerate(rows):
                for column, text in enumerate(texts):
                    self.ui.casesTable.setItem(row, column, qt.QTableWidgetItem(text))
        trainer = self.logic.trainerCheck()  # cached: asks the trainer's Python only when it changed
        for name, properties in self.actions.widgetStates(trainer, p).items():
            for key, value in properties.items():
                setattr(getattr(self.ui, name), key, value)
        preview = self.actions.training.takePreview() if self.actions.training else None
        if preview is not None:
            composite = slicer.app.layoutManager().sliceWidget("Yellow").mrmlSliceCompositeNode()
            composite.SetBackgroundVolumeID(preview[0].GetID())
            composite.SetLabelVolumeID(preview[1].GetID() if preview[1] else None)


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
        training_cases.adopt_old_scene_cases(node, parameters, RaGANCase)
        return parameters


#
# RaGANTest
#


class RaGANTest(SelfTest, ScriptedLoadableModuleTest):
    """The self-test of RaGANModuleLib/self_test.py with the trainer of the Environment panel."""

    def logic(self) -> ModuleLogic:
        return RaGANLogic()
