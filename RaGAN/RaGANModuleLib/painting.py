"""Segmentation -> synthetic scan (conditional models): a segmentation in the scene becomes a label file with the
model's label values, `ragan generate --labels` paints a volume for it, and the volume comes back on its grid.

    arguments, folder, scan = prepare_painting(scene, segmentation, model_folder, seed)   # painted-NNN/labels/
    job = TrainerJob(arguments, python)                                                       # painted-NNN/painted/
    volume, painted = load_painted(scene, job.finished["outputs"], model_folder, source_node=scan)

The segmentation is written as a labelmap on the grid of the volume it was drawn on (its source scan), each segment
with the value of the model's class of the same name, so a lesion painted with the Segment Editor into a real case's
segmentation comes back as a synthetic scan on that case's grid, ready to be shown beside the real one.
"""

from pathlib import Path

import slicer

from RaGANModuleLib import locations, results, scene_files
from RaGANModuleLib.trainer_job import paint_arguments
from RaGANModuleLib.training_cases import TrainingCase, _label_on_image_grid

LABEL_NAME = "segmentation"  # the label file's name, and so the painted volume's: images/segmentation.nrrd
PAINTING = "painting a segmentation"  # what a joint model cannot do (results.joint_model_reason)


def paint_unavailable_reason(model_folder: Path | None) -> str | None:
    """Why "Synthesize an image for this segmentation" cannot run with this model folder, in plain words, or None."""
    if model_folder is None:
        return "choose a model folder (the model/ folder of a run trained in conditional mode)"
    try:
        info = results.read_model(model_folder)
    except ValueError as error:
        return str(error)
    return results.joint_model_reason(info, model_folder, PAINTING)


def source_volume(scene, segmentation):
    """The volume a segmentation was drawn on (Segment Editor's source volume), or None."""
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    node = scene.GetNodeByID(segmentation.GetNodeReferenceID(role) or "")
    return node if node is not None and node.IsA("vtkMRMLScalarVolumeNode") else None


def export_label_for_model(scene, segmentation, source_volume, model_folder: Path, folder: Path) -> Path:
    """Write `segmentation` on the grid of `source_volume` as `<folder>/segmentation.nrrd`, segments by name with
    the model's label values. ValueError (with the reason) for a joint model or a segment the model does not know."""
    info = results.read_model(model_folder)
    reason = results.joint_model_reason(info, model_folder, PAINTING)
    if reason:
        raise ValueError(reason)
    values = {c.name: c.value for c in info.classes if c.value != 0}
    names = [segmentation.GetSegmentation().GetSegment(i).GetName() for i in scene_files.segment_ids(segmentation)]
    unknown = [name for name in names if name not in values]
    if unknown or not names:
        raise ValueError(
            f"segmentation '{segmentation.GetName()}' has segment(s) {', '.join(repr(n) for n in unknown) or '(none)'}"
            f" that the model does not know; name each segment as one of the model's classes: {', '.join(values)}"
        )
    path = Path(folder) / f"{LABEL_NAME}.nrrd"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The one way the module turns a segmentation into a labelmap on an image's grid (as for training cases).
    label = _label_on_image_grid(scene, TrainingCase(source_volume, segmentation), values)
    try:
        scene_files.write_volume(label, path)
    finally:
        scene_files.remove_node(scene, label)
    return path


def prepare_painting(scene, segmentation, model_folder: Path, seed: int) -> tuple[list[str], Path, object]:
    """Everything before the child starts: the segmentation's source volume, and a new `painted-NNN` folder beside
    the model holding `labels/segmentation.nrrd`. Returns (the `generate --labels` arguments, which paint into
    `painted-NNN/painted/`; the folder; the source volume). ValueError in plain words, with nothing left behind, for
    a segmentation that was not drawn on a volume, a joint model or a segment the model does not know."""
    scan = source_volume(scene, segmentation)
    if scan is None:
        raise ValueError(
            f"segmentation '{segmentation.GetName()}' was not drawn on a volume: pick the volume it belongs to as the "
            "source volume in Segment Editor, so the synthetic scan can be made on its grid"
        )
    folder = locations.new_run_folder(Path(model_folder).parent, "painted")
    locations.import_ragan_lib()
    from RaGANLib.results import outputs

    with outputs.staged(folder) as staging:  # the folder appears whole or not at all
        export_label_for_model(scene, segmentation, scan, model_folder, staging / "labels")
        outputs.move_into_place(staging, folder)
    labels = folder / "labels"
    return paint_arguments(model_folder, labels, seed, folder / "painted"), folder, scan


def load_painted(scene, outputs: dict, model_folder: Path, source_node=None, name: str = "RaGAN painted"):
    """The painted volume and its segmentation (from `generate --labels`' finished event), beside the source study."""
    painted = {
        key: str(Path(outputs[folder]) / f"{LABEL_NAME}.nrrd")
        for key, folder in (("image", "images"), ("label", "labels"))
    }
    return results.load_generated(scene, painted, model_folder, source_node=source_node, name=name)
