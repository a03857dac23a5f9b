"""Volume nodes <-> NRRD files, through Slicer's own storage nodes (they keep geometry: RAS in the scene, LPS on disk).

Also the two scene facts the rest of the module needs: segmentation conversion rules exist (Slicer registers them at
start-up; a bare `slicer-core` scene does not), and where a node sits in the subject hierarchy.
"""

from pathlib import Path

import slicer
import vtk


def ensure_segmentation_converters() -> None:
    """Register the binary labelmap <-> closed surface rules if nobody has (a bare MRML scene outside Slicer)."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if factory.ConstructRepresentationObjectByRepresentation("Binary labelmap") is None:
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


def segmentations_logic(scene) -> "slicer.vtkSlicerSegmentationsModuleLogic":
    ensure_segmentation_converters()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    return logic


def remove_node(scene, node) -> None:
    """Remove a node with its display and storage nodes (removing only the node would leave those behind)."""
    if node is None or scene.GetNodeByID(node.GetID()) is None:
        return
    helpers = []
    if node.IsA("vtkMRMLDisplayableNode"):
        helpers += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    if node.IsA("vtkMRMLStorableNode"):
        helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and scene.GetNodeByID(helper.GetID()) is not None:
            scene.RemoveNode(helper)


def write_volume(node, path: Path) -> Path:
    """Write a scalar or labelmap volume node to an uncompressed NRRD file, geometry and values unchanged."""
    if node.GetParentTransformNode() is not None:
        raise ValueError(f"volume '{node.GetName()}' is under a transform; harden it (Data module) and try again")
    if node.GetImageData() is None:
        raise ValueError(f"volume '{node.GetName()}' has no image data")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)
    if not storage.WriteData(node):
        raise OSError(f"could not write volume '{node.GetName()}' to '{path}'")
    return Path(path)


def read_volume(scene, path: Path, node_class: str, name: str, keep_storage: bool = True):
    """Load an image file as a new volume node of `node_class` ("vtkMRMLScalarVolumeNode", ...); removed on failure."""
    node = scene.AddNewNodeByClass(node_class, name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(storage)
        remove_node(scene, node)
        raise OSError(f"could not read '{path}' as a volume")
    if keep_storage:
        node.SetAndObserveStorageNodeID(storage.GetID())
    else:
        scene.RemoveNode(storage)
    node.CreateDefaultDisplayNodes()
    return node


def reload_volume(node, path: Path) -> None:
    """Replace the voxels and geometry of an existing volume node with a file's (the preview, refreshed)."""
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        raise OSError(f"could not read '{path}' as a volume")


def segment_ids(segmentation_node) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def string_array(values) -> vtk.vtkStringArray:
    array = vtk.vtkStringArray()
    for value in values:
        array.InsertNextValue(value)
    return array


def color_table(scene, name: str, names: dict[int, str], colors: dict[int, list[float]]):
    """A colour table node holding `names` and `colors` at their label values (how segments map to values)."""
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    table.SetTypeToUser()
    table.SetHideFromEditors(True)
    table.SetNumberOfColors(max(names, default=0) + 1)
    for value in range(table.GetNumberOfColors()):
        table.SetColor(value, "", 0.0, 0.0, 0.0, 0.0)
    for value, label_name in names.items():
        r, g, b = colors.get(value, (0.5, 0.5, 0.5))
        table.SetColor(value, label_name, r, g, b, 1.0)
    return table


def segments_from_labelmap(scene, labelmap, segmentation, names: dict[int, str], colors: dict[int, list[float]]):
    """Fill `segmentation` with one segment per class of `labelmap` (label value -> `names`, `colors`), in the exact
    colours (a colour table rounds them to 8 bits); a class the labelmap happens not to contain gets an empty
    segment. ValueError when Slicer cannot import the labelmap."""
    table = color_table(scene, "__RaGAN temporary colours__", names, colors)
    try:
        labelmap.GetDisplayNode().SetAndObserveColorNodeID(table.GetID())
        if not segmentations_logic(scene).ImportLabelmapToSegmentationNode(labelmap, segmentation):
            raise ValueError(f"'{labelmap.GetName()}' could not be turned into segments")
        present = {segmentation.GetSegmentation().GetSegment(i).GetName() for i in segment_ids(segmentation)}
        for value in sorted(names):
            if names[value] not in present:
                segmentation.GetSegmentation().AddEmptySegment("", names[value], colors[value])
        for segment_id in segment_ids(segmentation):
            segment = segmentation.GetSegmentation().GetSegment(segment_id)
            value = next((v for v, n in names.items() if n == segment.GetName()), None)
            if value is not None:
                segment.SetColor(*colors[value])
    finally:
        scene.RemoveNode(table)


def subject_hierarchy(scene):
    return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def hierarchy_item(scene, node) -> int:
    """The node's subject hierarchy item, made at the scene level if the node has none yet."""
    hierarchy = subject_hierarchy(scene)
    item = hierarchy.GetItemByDataNode(node)
    if not item:
        item = hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)
    return item


def place_beside_study(scene, nodes, source_node, folder_name: str) -> int:
    """Put `nodes` into a new subject hierarchy item next to the source node's study; returns that item.

    A source inside a patient/study gets a sibling study under the same patient; a source at the scene level gets a
    folder at the scene level.
    """
    hierarchy = subject_hierarchy(scene)
    parent = hierarchy.GetSceneItemID()
    level = "Folder"
    if source_node is not None:
        study = hierarchy.GetItemParent(hierarchy_item(scene, source_node))
        if study and study != hierarchy.GetSceneItemID():
            if hierarchy.GetItemLevel(study) == "Study":
                parent = hierarchy.GetItemParent(study)
                level = "Study"
            else:
                parent = study
    if level == "Study":
        item = hierarchy.CreateStudyItem(parent, folder_name)
    else:
        item = hierarchy.CreateFolderItem(parent, folder_name)
    for node in nodes:
        hierarchy.SetItemParent(hierarchy_item(scene, node), item)
    return item
