"""Scene -> run folder: each training case (an image volume and its label) written as NRRD, and the job spec.

    cases = [TrainingCase(ct_node, segmentation_node)]
    exported = export_cases(scene, cases, run_folder)     # marks the run folder; <run>/cases/case-000_image.nrrd, ...
    write_spec(run_folder, exported, {"size": 64, "steps": 600, "seed": 1})

A segmentation is exported to a labelmap on the image's grid. Segments are matched across cases by name, so "liver"
gets the same label value in every case; a labelmap volume keeps its values, named by its colour table. Nothing
else from the scene crosses over.
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer

from RaGANModuleLib import scene_files
from RaGANModuleLib.locations import import_ragan_lib

log = logging.getLogger("RaGAN")  # Slicer shows Python logging in its log


@dataclasses.dataclass
class TrainingCase:
    """One image volume and its label: a labelmap volume or a segmentation node."""

    image: object  # vtkMRMLScalarVolumeNode
    label: object  # vtkMRMLLabelMapVolumeNode or vtkMRMLSegmentationNode

    def describe(self) -> str:
        return f"{self.image.GetName()} + {self.label.GetName()}"


@dataclasses.dataclass
class ExportedCases:
    """What `export_cases` wrote: file pairs (relative to the run folder) and the label value names and colours."""

    pairs: list[list[str]]
    label_names: dict[int, str]
    label_colors: dict[int, list[float]]


def is_segmentation(node) -> bool:
    return node.IsA("vtkMRMLSegmentationNode")


def find_label_for(scene, image) -> object | None:
    """The label that belongs to an image: a segmentation made on it, or a labelmap on the same grid named like it."""
    reference_role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    for segmentation in _nodes(scene, "vtkMRMLSegmentationNode"):
        if segmentation.GetNodeReferenceID(reference_role) == image.GetID() and scene_files.segment_ids(segmentation):
            return segmentation
    for labelmap in _nodes(scene, "vtkMRMLLabelMapVolumeNode"):
        if labelmap.GetName().startswith(image.GetName()) and _same_grid(labelmap, image):
            return labelmap
    return None


def cases_with_labels(scene) -> list[TrainingCase]:
    """Every scalar volume in the scene that has a label (see `find_label_for`)."""
    cases = []
    for image in _nodes(scene, "vtkMRMLScalarVolumeNode"):
        if image.IsA("vtkMRMLLabelMapVolumeNode") or image.GetHideFromEditors():
            continue
        label = find_label_for(scene, image)
        if label is not None:
            cases.append(TrainingCase(image, label))
    return cases


def with_cases(cases: list, new: list) -> list:
    """`cases` followed by those of `new` (anything with .image and .label nodes) not already among them."""
    known = {(c.image.GetID(), c.label.GetID()) for c in cases}
    added = []
    for case in new:
        if (case.image.GetID(), case.label.GetID()) not in known:
            known.add((case.image.GetID(), case.label.GetID()))
            added.append(case)
    return list(cases) + added


# Scenes saved before the case list became RaGAN.py's RaGANCase parameter pack keep their cases in two parallel lists,
# stored as Slicer's parameter node wrapper stores a list of nodes: "<name>_len" and a node reference "<name>_<i>".
OLD_CASE_LISTS = ("caseImages", "caseLabels")


def take_old_scene_cases(parameter_node) -> list[TrainingCase]:
    """The training cases a scene saved by an older RaGAN keeps under the old parameter names (pairs whose nodes are no
    longer in the scene left out), and those parameters removed from the node: a case list is read from them once."""
    images, labels = (_old_node_list(parameter_node, name) for name in OLD_CASE_LISTS)
    cases = [TrainingCase(image, label) for image, label in zip(images, labels) if image and label]
    if images or labels:
        log.info("RaGAN: %d training case(s) read from a scene an older RaGAN saved (of %d)", len(cases), len(images))
    return cases


def adopt_old_scene_cases(parameter_node, parameters, case=TrainingCase) -> None:
    """The cases an older RaGAN saved on `parameter_node` (take_old_scene_cases) appended to the case list of
    `parameters` (the node's wrapper: RaGANParameterNode), once; `case` makes an entry of that list (RaGANCase)."""
    old = [case(image=c.image, label=c.label) for c in take_old_scene_cases(parameter_node)]
    if old:
        parameters.cases = with_cases(list(parameters.cases), old)


def _old_node_list(parameter_node, name: str) -> list:
    length = parameter_node.GetParameter(f"{name}_len")
    nodes = [parameter_node.GetNodeReference(f"{name}_{i}") for i in range(int(length) if length.isdigit() else 0)]
    for i in range(len(nodes)):
        parameter_node.UnsetParameter(f"{name}_{i}")
        parameter_node.RemoveNodeReferenceIDs(f"{name}_{i}")
    parameter_node.UnsetParameter(f"{name}_len")
    return nodes


def label_array(scene, case: TrainingCase, values: dict[str, int] | None = None) -> np.ndarray:
    """The case's label as an array on the image's grid ([k, j, i]); segments get `values` by name (else 1, 2, ...)."""
    label = _label_on_image_grid(scene, case, values)
    try:
        return slicer.util.arrayFromVolume(label).copy()
    finally:
        scene_files.remove_node(scene, label)


def labelled_slice_count(scene, case: TrainingCase, axis: str) -> int:
    """How many slices along `axis` hold any label: what training with slices="labelled" uses of this case, counted
    the trainer's way. The label is turned to LPS as RaGANLib.data.inputs.read_case turns the exported file, then cut
    with the trainer's RaGANLib.data.prepare.to_slices: a sagittally acquired volume's axial slices are not its index
    slices."""
    import_ragan_lib()
    from RaGANLib.data.prepare import to_slices

    label = sitk.GetImageFromArray(label_array(scene, case))
    label.SetSpacing(case.image.GetSpacing())
    matrix = _ijk_to_ras(case.image)
    spacing = case.image.GetSpacing()
    ras_to_lps = (-1.0, -1.0, 1.0)
    label.SetDirection([ras_to_lps[r] * matrix.GetElement(r, c) / spacing[c] for r in range(3) for c in range(3)])
    if label.GetSize()[2] > 1:  # read_case keeps a single slice (a 2D image) as it is
        label = sitk.DICOMOrient(label, "LPS")
    stack = to_slices(sitk.GetArrayViewFromImage(label), label.GetSpacing(), axis)[0]
    return int(np.count_nonzero(stack.reshape(len(stack), -1).any(axis=1)))


def export_cases(scene, cases: list[TrainingCase], run_folder: Path) -> ExportedCases:
    """Write every case's image and label (on the image's grid) as NRRD under `<run>/cases/`.

    `run_folder` must be new or empty (or already a RaGAN run folder): it is marked as a run folder first, the proof
    that `ragan train` needs before it writes there (RaGANLib.results.outputs)."""
    if not cases:
        raise ValueError("add at least one training case (an image and its label)")
    import_ragan_lib()
    from RaGANLib.results.outputs import claim

    claim(run_folder, "run")
    names, colors = _label_names_and_colors(cases)
    values = {name: value for value, name in names.items()}
    folder = Path(run_folder) / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for number, case in enumerate(cases):
        image_path = folder / f"case-{number:03d}_image.nrrd"
        label_path = folder / f"case-{number:03d}_label.nrrd"
        scene_files.write_volume(case.image, image_path)
        label = _label_on_image_grid(scene, case, values)
        try:
            scene_files.write_volume(label, label_path)
        finally:
            scene_files.remove_node(scene, label)
        pairs.append([image_path.relative_to(run_folder).as_posix(), label_path.relative_to(run_folder).as_posix()])
    return ExportedCases(pairs, names, colors)


def write_spec(run_folder: Path, exported: ExportedCases, options: dict) -> Path:
    """Write `<run>/spec.json` for `ragan train`, checked by RaGANLib's own TrainSpec (the one source of options).
    An option given as text (the panel's augment: "ada" or a probability) is read as its `ragan train` flag reads it."""
    import_ragan_lib()
    from RaGANLib.spec import TrainSpec, parse_option

    options = {name: parse_option(name, value) if isinstance(value, str) else value for name, value in options.items()}
    spec = TrainSpec(
        pairs=exported.pairs,
        label_names={str(v): n for v, n in exported.label_names.items()},
        label_colors={str(v): [round(c, 4) for c in rgb] for v, rgb in exported.label_colors.items()},
        **options,
    )
    spec.validate("training options")
    path = Path(run_folder) / "spec.json"
    spec.save(path)
    return path


# Helpers.


def _nodes(scene, class_name: str) -> list:
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def _same_grid(a, b) -> bool:
    ma, mb = _ijk_to_ras(a), _ijk_to_ras(b)
    same_matrix = all(abs(ma.GetElement(r, c) - mb.GetElement(r, c)) < 1e-4 for r in range(4) for c in range(4))
    return same_matrix and a.GetImageData().GetDimensions() == b.GetImageData().GetDimensions()


def _ijk_to_ras(volume):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return matrix


def _label_names_and_colors(cases: list[TrainingCase]) -> tuple[dict[int, str], dict[int, list[float]]]:
    """Label value -> name and colour over all cases; a segment name keeps one value in every case."""
    names: dict[int, str] = {}
    colors: dict[int, list[float]] = {}
    for case in cases:
        if is_segmentation(case.label):
            continue
        values = np.unique(slicer.util.arrayFromVolume(case.label))
        color_node = case.label.GetDisplayNode().GetColorNode() if case.label.GetDisplayNode() else None
        for value in (int(v) for v in values if v != 0):
            name = color_node.GetColorName(value) if color_node is not None else ""
            if not name or name.lower() in ("invalid", "(none)"):
                name = f"label {value}"
            names.setdefault(value, name)
            if color_node is not None and value not in colors:
                rgba = [0.0, 0.0, 0.0, 0.0]
                color_node.GetColor(value, rgba)
                colors[value] = list(rgba[:3])
    for case in cases:
        if not is_segmentation(case.label):
            continue
        segmentation = case.label.GetSegmentation()
        for segment_id in scene_files.segment_ids(case.label):
            segment = segmentation.GetSegment(segment_id)
            if segment.GetName() in names.values():
                continue
            value = max(names, default=0) + 1
            names[value] = segment.GetName()
            colors[value] = list(segment.GetColor())
    return names, colors


def _label_on_image_grid(scene, case: TrainingCase, values: dict[str, int] | None):
    """A temporary labelmap node with the case's label on the image's grid; the caller removes it."""
    if not is_segmentation(case.label):
        if _same_grid(case.label, case.image):
            labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__RaGAN temporary label__")
            labelmap.SetHideFromEditors(True)
            labelmap.SetIJKToRASMatrix(_ijk_to_ras(case.image))
            labelmap.SetAndObserveImageData(_copy_image(case.label.GetImageData()))
            return labelmap
        return _labelmap_resampled_on_image(scene, case)
    ids = scene_files.segment_ids(case.label)
    if not ids:
        raise ValueError(f"segmentation '{case.label.GetName()}' has no segments")
    names = None
    if values:
        segmentation = case.label.GetSegmentation()
        names = {values[segmentation.GetSegment(i).GetName()]: segmentation.GetSegment(i).GetName() for i in ids}
    return _export_segments(scene, case.label, ids, case.image, names)


def _labelmap_resampled_on_image(scene, case: TrainingCase):
    """A labelmap on another grid than its image, brought onto the image's grid through a temporary segmentation
    (as Slicer does when it shows it there), label values unchanged."""
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "__RaGAN temporary segmentation__")
    try:
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(case.image)
        if not scene_files.segmentations_logic(scene).ImportLabelmapToSegmentationNode(case.label, segmentation):
            raise ValueError(f"label '{case.label.GetName()}' could not be brought onto '{case.image.GetName()}'")
        ids = scene_files.segment_ids(segmentation)
        names = {}
        for segment_id in ids:
            segment = segmentation.GetSegmentation().GetSegment(segment_id)
            names[segment.GetLabelValue()] = f"value {segment.GetLabelValue()}"
            segment.SetName(names[segment.GetLabelValue()])
        return _export_segments(scene, segmentation, ids, case.image, names)
    finally:
        scene_files.remove_node(scene, segmentation)


def _export_segments(scene, segmentation, ids: list[str], image, names: dict[int, str] | None):
    """Segments -> a temporary labelmap on the image's grid; segment names[value] gets value (else 1, 2, ...)."""
    logic = scene_files.segmentations_logic(scene)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__RaGAN temporary label__")
    labelmap.SetHideFromEditors(True)
    table = scene_files.color_table(scene, "__RaGAN temporary colours__", names, {}) if names else None
    try:
        extent = slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        ok = logic.ExportSegmentsToLabelmapNode(
            segmentation, scene_files.string_array(ids), labelmap, image, extent, table
        )
    finally:
        if table is not None:
            scene.RemoveNode(table)
    if not ok:
        scene_files.remove_node(scene, labelmap)
        raise ValueError(f"segmentation '{segmentation.GetName()}' could not be exported on '{image.GetName()}'")
    return labelmap


def _copy_image(image):
    import vtk

    copy = vtk.vtkImageData()
    copy.DeepCopy(image)
    return copy
