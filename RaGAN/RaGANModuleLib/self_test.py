"""The module's self-test, without Qt: Slicer runs it from Developer mode ("Reload and Test") and on the extension
build machines, which have no TensorFlow (RaGANTest in RaGAN.py is SelfTest on Slicer's ScriptedLoadableModuleTest).
The TensorFlow-free parts always run (scene export, a stored synthetic result loaded, nnU-Net export, a segmentation
written for a conditional model); the training round trip runs only where the trainer's Python has TensorFlow and
Keras. The last message says which parts ran.
"""

import tempfile
from pathlib import Path

import slicer

from RaGANModuleLib import demo_data, painting, training_cases
from RaGANModuleLib.trainer_job import JobState


class SelfTest:
    """The parts of the self-test and the order they run in; a unittest.TestCase subclass that also has `logic()` (the
    module logic to test) and `delayDisplay` runs them with `runTest()`."""

    def logic(self):
        """The module logic the parts use (RaGANTest's: RaGANLogic, with the Environment panel's trainer)."""
        raise NotImplementedError

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
        check = self.logic().trainerCheck()
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

        logic = self.logic()
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

        synthetic, labels = self.logic().loadPainted(slicer.mrmlScene, outputs, model, scan)
        self.assertEqual(synthetic.GetImageData().GetDimensions(), scan.GetImageData().GetDimensions())
        names = sorted(labels.GetSegmentation().GetNthSegment(i).GetName() for i in range(3))
        self.assertEqual(names, ["lesion", "organ", "vessel"])

    def test_phantom_train_generate_load(self):
        self.delayDisplay("Training a few steps on a phantom case (the first start loads TensorFlow)")
        logic = self.logic()
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
