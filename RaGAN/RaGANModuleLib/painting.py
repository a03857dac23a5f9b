"""Segmentation -> synthetic scan (conditional models): a segmentation in the scene becomes a label file with the
model's label values, `ragan generate --labels` paints a volume for it, and the volume comes back on its grid.

    labels = export_label_for_model(scene, segmentation, ct_node, model_folder, job_folder / "labels")
    job = TrainerJob(paint_arguments(model_folder, labels, seed, job_folder / "painted"), python)
    volume, painted = load_painted(scene, job.finished["outputs"], model_folder, source_node=ct_node)

The segmentation is written as a labelmap on the grid of the volume it was drawn on (its source scan), each segment
with the value of the model's class of the same name, so a lesion painted with the Segment Editor into a real case's
segmentation comes back as a synthetic scan on that case's grid, ready to be shown beside the real one.
"""

from pathlib import Path

from RaGANModuleLib import results, scene_files
from RaGANModuleLib.training_cases import TrainingCase, _label_on_image_grid

LABEL_NAME = "segmentation"  # the label file's name, and so the painted volume's: images/segmentation.nrrd


def export_label_for_model(scene, segmentation, source_volume, model_folder: Path, folder: Path) -> Path:
    """Write `segmentation` on the grid of `source_volume` as `<folder>/segmentation.nrrd`, segments by name with
    the model's label values. ValueError (with the reason) for a joint model or a segment the model does not know."""
    info = results.read_model_info(model_folder)
    if info.get("mode", "joint") != "conditional":
        raise ValueError(
            f"the model in '{model_folder}' makes its own labels (a joint model); painting a segmentation needs a "
            "model trained in conditional mode"
        )
    values = {c["name"]: c["value"] for c in info["classes"] if c["value"] != 0}
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


def load_painted(scene, outputs: dict, model_folder: Path, source_node=None, name: str = "RaGAN painted"):
    """The painted volume and its segmentation (from `generate --labels`' finished event), beside the source study."""
    painted = {
        key: str(Path(outputs[folder]) / f"{LABEL_NAME}.nrrd")
        for key, folder in (("image", "images"), ("label", "labels"))
    }
    return results.load_generated(scene, painted, model_folder, source_node=source_node, name=name)
