"""Trainer output -> scene: the synthetic volume and segmentation, the live preview, and the loss chart; and what a
model folder is (its checked model.json), with what only a conditional model can do.

    volume, segmentation = load_generated(scene, finished_event["outputs"], model_folder, source_node=ct_node)
    preview = PreviewNodes(scene); preview.update(preview_event)
    chart = LossChart(scene); chart.add(progress_event)

Segment names, colours and label values come from the model's `model.json`, so "liver" trained from a segment named
"liver" comes back as a segment named "liver" in the same colour. If loading fails half-way, the nodes made so far are
removed: nothing half-made stays in the scene.
"""

from pathlib import Path

from RaGANModuleLib import scene_files
from RaGANModuleLib.locations import import_ragan_lib


def read_model(model_folder: Path, keras: str | None = None):
    """The model's `model.json` as RaGANLib.model.model_info.ModelInfo (classes with values, names and colours; slice
    grid; modality; mode), checked by the trainer's own reader; a folder that is not a usable model raises ValueError
    with the reason. With `keras` (the trainer's Keras version), a model saved by a newer Keras is refused with the
    version to install."""
    import_ragan_lib()
    from RaGANLib.errors import BadInput
    from RaGANLib.model.model_info import MODEL_JSON, check_keras, read_model_info

    try:
        info = read_model_info(Path(model_folder))
        check_keras(info, keras, f"'{Path(model_folder) / MODEL_JSON}'")
        return info
    except BadInput as error:
        raise ValueError(str(error)) from None


def joint_model_reason(info, model_folder: Path, wanted: str) -> str | None:
    """Why the model in `model_folder` (its checked model.json, a ModelInfo) cannot do what only a conditional model
    does (`wanted`, e.g. "painting a segmentation"), or None: a joint model makes its own labels."""
    if info.conditional:
        return None
    return (
        f"the model in '{model_folder}' makes its own labels (a joint model); {wanted} needs a model trained in "
        "conditional mode (Training > Advanced > Mode: conditional)"
    )


ADDING_RARE = "adding extra lesions / thin structures to its slices"  # what the Generate section's addRare asks for


def add_rare_unavailable_reason(model_folder: Path | None) -> str | None:
    """Why the Generate section's "Extra lesions / thin structures per slice" cannot be used with this model folder
    (a joint model), or None; a folder that is not a model says nothing here (Generate says it when pressed)."""
    if model_folder is None:
        return None
    try:
        info = read_model(model_folder)
    except ValueError:
        return None
    return joint_model_reason(info, model_folder, ADDING_RARE)


def orient_views(slice_nodes, axis: str) -> None:
    """Turn slice views to the model's slicing axis, so that a synthetic stack shows one slice at a time there (and
    the real case beside it is seen the same way)."""
    for slice_node in slice_nodes:
        slice_node.SetOrientation(axis.capitalize())  # Slicer's presets: "Axial", "Coronal", "Sagittal"


def show_side_by_side(layout_manager, real_case, volume, segmentation, axis: str) -> None:
    """Real case on the left (Red), synthetic on the right (Yellow), each with its labels, views linked, both turned to
    the model's slicing axis (the synthetic stack shows one training-like slice at a time). `layout_manager` is
    Slicer's (slicer.app.layoutManager()); `real_case` has .image and .label nodes, or is None."""
    import slicer

    layout_manager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
    orient_views([layout_manager.sliceWidget(v).mrmlSliceNode() for v in ("Red", "Yellow")], axis)
    for view_name, shown in (("Red", real_case.image if real_case else None), ("Yellow", volume)):
        slice_widget = layout_manager.sliceWidget(view_name)
        composite = slice_widget.mrmlSliceCompositeNode()
        composite.SetBackgroundVolumeID(shown.GetID() if shown else None)
        composite.SetLabelVolumeID(None)
        composite.SetLinkedControl(True)
        slice_widget.sliceLogic().FitSliceToAll()
    _show_only_in(segmentation, "vtkMRMLSliceNodeYellow")
    if real_case is None:
        return
    if real_case.label.IsA("vtkMRMLSegmentationNode"):
        _show_only_in(real_case.label, "vtkMRMLSliceNodeRed")
    else:
        layout_manager.sliceWidget("Red").mrmlSliceCompositeNode().SetLabelVolumeID(real_case.label.GetID())


def _show_only_in(segmentation, slice_node_id: str) -> None:
    display = segmentation.GetDisplayNode()
    if display is None:
        segmentation.CreateDefaultDisplayNodes()
        display = segmentation.GetDisplayNode()
    display.RemoveAllViewNodeIDs()
    display.AddViewNodeID(slice_node_id)


def model_classes(model_folder: Path) -> list:
    """The model's label classes other than background (RaGANLib.model.model_info.LabelClass: value, name, color)."""
    return [c for c in read_model(model_folder).classes if c.value != 0]


def load_generated(scene, outputs: dict, model_folder: Path, source_node=None, name: str = "RaGAN synthetic"):
    """Load `generate`'s image and label as a scalar volume and a segmentation beside the source study.

    Returns (volume node, segmentation node). Both sit in a new subject hierarchy item named `name`, placed as a
    sibling of the source node's study (see scene_files.place_beside_study).
    """
    classes = model_classes(model_folder)
    made = []
    try:
        volume = scene_files.read_volume(scene, outputs["image"], "vtkMRMLScalarVolumeNode", f"{name} image")
        made.append(volume)
        segmentation = segmentation_from_label_file(scene, outputs["label"], classes, f"{name} label", volume)
        made.append(segmentation)
        made.append(scene_files.place_beside_study(scene, [volume, segmentation], source_node, name))
    except Exception:
        _remove(scene, made)
        raise
    return volume, segmentation


def segmentation_from_label_file(scene, label_path: Path, classes: list, name: str, reference_volume):
    """A segmentation with one segment per class (named and coloured as the class), from a label NRRD file."""
    labelmap = scene_files.read_volume(
        scene, label_path, "vtkMRMLLabelMapVolumeNode", "__RaGAN temporary label__", keep_storage=False
    )
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    try:
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
        names, colors = {c.value: c.name for c in classes}, {c.value: c.color for c in classes}
        try:
            scene_files.segments_from_labelmap(scene, labelmap, segmentation, names, colors)
        except ValueError:
            raise ValueError(f"'{label_path}' could not be turned into segments") from None
    except Exception:
        scene_files.remove_node(scene, segmentation)
        raise
    finally:
        scene_files.remove_node(scene, labelmap)
    return segmentation


class PreviewNodes:
    """The training preview in the scene: one volume and one labelmap node, refreshed from each `preview` event."""

    def __init__(self, scene, name: str = "RaGAN preview"):
        self.scene = scene
        self.name = name
        self.volume = None
        self.label = None
        self.step = None

    def update(self, event: dict) -> bool:
        """Load or reload the preview stack the event names; returns True if the scene changed."""
        image, label = event.get("image"), event.get("label")
        if not image or not Path(image).is_file():
            return False
        if self.volume is None or self.scene.GetNodeByID(self.volume.GetID()) is None:
            self.volume = scene_files.read_volume(self.scene, image, "vtkMRMLScalarVolumeNode", f"{self.name} image")
        else:
            scene_files.reload_volume(self.volume, image)
        if label and Path(label).is_file():
            if self.label is None or self.scene.GetNodeByID(self.label.GetID()) is None:
                node_class = "vtkMRMLLabelMapVolumeNode"
                self.label = scene_files.read_volume(self.scene, label, node_class, f"{self.name} label")
            else:
                scene_files.reload_volume(self.label, label)
        self.step = event.get("step")
        return True


class LossChart:
    """Losses over steps as a table, one plot series per loss, and a chart that a plot view shows."""

    def __init__(self, scene, name: str = "RaGAN losses"):
        self.scene = scene
        self.table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} table")
        self.chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
        self.chart.SetTitle("Training losses")
        self.chart.SetXAxisTitle("step")
        self.chart.SetYAxisTitle("loss")
        self.series: dict[str, object] = {}
        self.rows = 0
        import vtk

        steps = vtk.vtkDoubleArray()
        steps.SetName("step")
        self.table.AddColumn(steps)

    def add(self, progress: dict) -> None:
        """Append one progress event's losses (a loss seen first later gets its own column from then on)."""
        import vtk

        losses = progress.get("losses", {})
        table = self.table.GetTable()
        for loss in losses:
            if loss not in self.series:
                column = vtk.vtkDoubleArray()
                column.SetName(loss)
                column.SetNumberOfTuples(self.rows)
                column.Fill(float("nan"))
                table.AddColumn(column)
                series = self.scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", loss)
                series.SetAndObserveTableNodeID(self.table.GetID())
                series.SetXColumnName("step")
                series.SetYColumnName(loss)
                series.SetPlotType(series.PlotTypeLine)
                series.SetColor(*_SERIES_COLORS[len(self.series) % len(_SERIES_COLORS)])
                self.chart.AddAndObservePlotSeriesNodeID(series.GetID())
                self.series[loss] = series
        row = table.InsertNextBlankRow()
        table.SetValueByName(row, "step", float(progress.get("step", 0)))
        for loss, value in losses.items():
            table.SetValueByName(row, loss, float(value))
        self.rows += 1
        table.Modified()
        self.table.Modified()

    def nodes(self) -> list:
        return [self.chart, self.table, *self.series.values()]


_SERIES_COLORS = [(0.85, 0.33, 0.1), (0.0, 0.45, 0.74), (0.47, 0.67, 0.19), (0.49, 0.18, 0.56), (0.93, 0.69, 0.13)]


def _remove(scene, made) -> None:
    hierarchy = scene_files.subject_hierarchy(scene)
    for thing in reversed(made):
        if isinstance(thing, int):
            hierarchy.RemoveItem(thing)
        else:
            scene_files.remove_node(scene, thing)
