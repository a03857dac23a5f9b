"""A phantom CT case put into the scene: image volume + segmentation with named segments, no download, no patient.

The voxels come from RaGANLib.data.phantom (numpy only), the same cases the trainer's tests use.
"""

import numpy as np
import slicer
import vtk

from RaGANModuleLib import scene_files
from RaGANModuleLib.locations import MODULE_FOLDER, import_ragan_lib


def add_phantom_case(scene, seed: int = 0, shape: tuple[int, int, int] = (20, 96, 96), name: str | None = None):
    """Add a phantom CT volume (HU) and its segmentation ("organ", "lesion", "vessel") to the scene; returns
    (volume, segmentation)."""
    import_ragan_lib()
    from RaGANLib.data import phantom

    image, label = phantom.make_case(seed, shape)
    name = name or f"RaGAN phantom {seed}"
    volume = _volume_from_array(scene, "vtkMRMLScalarVolumeNode", name, image, phantom.SPACING)
    labelmap = _volume_from_array(
        scene, "vtkMRMLLabelMapVolumeNode", "__RaGAN temporary label__", label, phantom.SPACING
    )
    names = {int(v): n for v, n in phantom.CLASS_NAMES.items()}
    colors = {int(v): c for v, c in phantom.CLASS_COLORS.items()}
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name} segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    try:
        scene_files.segments_from_labelmap(scene, labelmap, segmentation, names, colors)
    finally:
        scene_files.remove_node(scene, labelmap)
    if volume.GetDisplayNode() is not None:
        volume.GetDisplayNode().SetAutoWindowLevel(False)
        volume.GetDisplayNode().SetWindowLevel(400, 40)  # abdomen window
    return volume, segmentation


def sample_data_source(scene_of) -> dict:
    """The phantom case as a source of Slicer's Sample Data module (category RaGAN), the arguments of its
    registerCustomSampleDataSource: made on the spot in the scene `scene_of()` gives, so nothing is downloaded."""
    return {
        "category": "RaGAN",
        "sampleName": "RaGANPhantomCT",
        "uris": [],  # nothing to download: customDownloader makes the case
        "fileNames": [],
        "nodeNames": [],
        "thumbnailFileName": str(MODULE_FOLDER / "Resources" / "Icons" / "RaGANPhantomCT.png"),
        "customDownloader": lambda source: add_phantom_case(scene_of()),
    }


def _volume_from_array(scene, node_class: str, name: str, array: np.ndarray, spacing) -> object:
    """A volume node holding `array` ([k, j, i]) with `spacing` (x, y, z) in the usual LPS-on-disk orientation."""
    node = scene.AddNewNodeByClass(node_class, name)
    node.SetAndObserveImageData(vtk.vtkImageData())
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.SetSpacing(*spacing)
    directions = vtk.vtkMatrix4x4()
    directions.SetElement(0, 0, -1.0)  # RAS <- LPS, as a CT loaded from DICOM or NRRD would be
    directions.SetElement(1, 1, -1.0)
    node.SetIJKToRASDirectionMatrix(directions)
    node.CreateDefaultDisplayNodes()
    return node
