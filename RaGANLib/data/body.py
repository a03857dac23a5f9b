"""The body outline as one more condition class (`ragan train --mode conditional --body`).

An MR or CT label often holds a lesion only: a conditional generator given nothing but the lesion has to invent the
limb or the trunk around it from noise. With --body it is also given where the body is: every training slice's
foreground (tissue brighter than the air around it), as a class of its own on the pixels no label class holds. The
generator then paints the anatomy inside a real outline, moved with the labels like every layout. The body class is
a condition only: it is the last class of the generator's input and of model/labels.npz (model.json: "body": true),
and background in every label RaGAN writes (synthetic.sample_chunks).

The outline of a slice: pixels above one threshold for the whole training set (Otsu's, between air and tissue),
closed over 2 pixels, holes filled, specks under MIN_SHARE of the slice dropped. For label volumes the user gives
(`generate --labels`) there are no images: each slice takes the outline of the training layout whose labelled pixels
overlap it most (`outline_for`).
"""

import dataclasses

import numpy as np
import SimpleITK as sitk

BODY_NAME = "body (condition only)"
BODY_COLOR = (0.55, 0.55, 0.6)
CLOSING_RADIUS = 2  # pixels: bridges the dark rim of cortical bone or fascia at the edge of the outline
MIN_SHARE = 0.01  # a bright component smaller than this share of the slice is noise or a marker, not the body
THRESHOLD_SLICES = 256  # training slices, evenly spread, that the threshold is found from


def body_threshold(images: np.ndarray) -> float:
    """Otsu's threshold between air and tissue over the training slices ([-1, 1] intensities; THRESHOLD_SLICES of
    them, evenly spread, when there are more)."""
    chosen = np.unique(np.linspace(0, len(images) - 1, min(len(images), THRESHOLD_SLICES)).astype(int))
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.Execute(sitk.GetImageFromArray(np.asarray(images[chosen], dtype=np.float32)))
    return float(otsu.GetThreshold())


def outline(image: np.ndarray, threshold: float) -> np.ndarray:
    """The body of one [size, size] slice: above `threshold`, closed, holes filled, specks dropped (boolean)."""
    mask = sitk.GetImageFromArray((np.asarray(image, dtype=np.float32) > threshold).astype(np.uint8))
    mask = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(mask, [CLOSING_RADIUS] * 2))
    kept = sitk.RelabelComponent(sitk.ConnectedComponent(mask), minimumObjectSize=int(MIN_SHARE * image.size))
    return sitk.GetArrayFromImage(kept) > 0


def condition_labels(images: np.ndarray, labels: np.ndarray, body_index: int) -> np.ndarray:
    """The training labels with `body_index` on every background pixel inside its slice's outline (uint8)."""
    threshold = body_threshold(images)
    conditions = np.array(labels, dtype=np.uint8)
    for image, label in zip(images, conditions):
        label[(label == 0) & outline(image, threshold)] = body_index
    return conditions


def with_body(data):
    """The prepared slices (RaGANLib.data.prepare.PreparedData) as the conditional networks see them with --body:
    their labels with the body class added last (condition_labels), listed as a class with its pixel share."""
    body_index = len(data.classes)
    conditions = condition_labels(data.images, data.labels, body_index)
    counts = np.bincount(conditions.ravel(), minlength=body_index + 1)
    entry = {"index": body_index, "value": 0, "name": BODY_NAME, "color": list(BODY_COLOR)}
    meta = {
        **data.meta,
        "classes": [*data.meta["classes"], entry],
        "class_pixel_fraction": [round(float(c / counts.sum()), 6) for c in counts],
    }
    return dataclasses.replace(data, labels=conditions, meta=meta)


def outline_for(indices: np.ndarray, training: np.ndarray, body_index: int) -> np.ndarray:
    """Given label slices (class indices on the model's grid, no body) with the body added from the conditions of
    the model's `training` slices: each slice takes the outline of the training slice whose labelled pixels overlap
    its own most (Dice); a slice without labels takes that of the nearest labelled slice of the same stack, a stack
    without any the largest training outline. Labelled pixels keep their class."""
    labelled = training.reshape(len(training), -1)
    labelled = (labelled > 0) & (labelled != body_index)
    given = indices.reshape(len(indices), -1) > 0
    matches = np.full(len(indices), int(np.argmax((training == body_index).reshape(len(training), -1).sum(axis=1))))
    holding = np.flatnonzero(given.any(axis=1))
    if len(holding):
        held, columns = given[holding], labelled.any(axis=0)  # only pixels some training slice labels can overlap
        overlap = held[:, columns].astype(np.float32) @ labelled[:, columns].T.astype(np.float32)
        sizes = labelled.sum(axis=1)[None, :] + held.sum(axis=1)[:, None]
        matches[holding] = np.argmax(2 * overlap / np.maximum(sizes, 1), axis=1)
        nearest = holding[np.abs(np.arange(len(indices))[:, None] - holding[None, :]).argmin(axis=1)]
        matches = matches[nearest]
    body = training[matches] != 0
    return np.where((indices == 0) & body, body_index, indices).astype(np.uint8)


def without_body(labels: np.ndarray, body_index: int) -> np.ndarray:
    """Class indices with the body condition (`body_index` and above) turned back into background: no label RaGAN
    writes or scores holds the body class."""
    return np.where(labels >= body_index, 0, labels).astype(np.uint8)
