"""The body outline as a condition (`ragan train --mode conditional --body`, RaGANLib/data/body.py): found where the
phantom's body is, added only where no label class is, moved and painted with the layouts, and never written into
a label: a tiny real run, `generate --count` and `generate --labels` from its model."""

import json
import os

import numpy as np
import SimpleITK as sitk
from ragan_testing import TINY, events_of, ragan, trained_ahead

from RaGANLib.data import phantom
from RaGANLib.data.body import condition_labels, outline, outline_for
from RaGANLib.data.prepare import load_cache
from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec

AIR_HU, BODY_HU = -1000.0, -500.0


def phantom_slices(seed: int = 0):
    """A phantom case's slices on the [-1, 1] scale (a window of -1000..400 HU), its labels, and where its body is
    (denser than BODY_HU: the fat rim and everything inside it)."""
    image, label = phantom.make_case(seed, (6, 64, 64))
    scaled = np.clip((image - AIR_HU) / 1400 * 2 - 1, -1, 1).astype(np.float32)
    return scaled, label.astype(np.uint8), image > BODY_HU


def test_the_outline_is_the_phantom_body_without_the_air_around_it():
    images, labels, body = phantom_slices()
    found = condition_labels(images, labels, body_index=4)
    outlined = found > 0
    assert np.array_equal(found[labels > 0], labels[labels > 0]), "labelled pixels keep their class"
    assert set(np.unique(found[(labels == 0) & outlined])) == {4}, "the body class only where no label class is"
    overlap = (outlined & body).sum() / (outlined | body).sum()
    assert overlap > 0.97, overlap
    assert not outlined[:, 0, :].any() and not outlined[:, :, 0].any(), "the air at the border is no body"
    # A speck of noise in the air is no body; a dark hole inside the body (a bowel gas bubble) is.
    slice_ = images[0].copy()
    slice_[2:4, 2:4] = 1.0
    inside = np.argwhere(body[0] & (labels[0] == 0))[len(np.argwhere(body[0] & (labels[0] == 0))) // 2]
    slice_[inside[0], inside[1]] = -1.0
    mask = outline(slice_, threshold=-0.5)
    assert not mask[2:4, 2:4].any() and mask[inside[0], inside[1]]


def test_a_given_label_takes_the_outline_of_the_training_slice_it_overlaps_most():
    training = np.zeros((3, 16, 16), np.uint8)
    for index, (top, left) in enumerate([(2, 2), (6, 6), (9, 3)]):
        training[index, 1:15, 1:15] = 5  # the body class (index 5)
        training[index, top : top + 4, left : left + 4] = 1 + index % 2  # a labelled square in each
        training[index, 0, index] = 5  # a mark that tells the outlines apart
    given = np.zeros((4, 16, 16), np.uint8)
    given[1, 7:11, 7:11] = 2  # overlaps training slice 1's square most
    given[3, 9:13, 3:7] = 3  # a class the training slice lacks: matched by where it is labelled, kept as it is
    conditioned = outline_for(given, training, body_index=5)
    assert conditioned[1, 0, 1] == 5 and conditioned[1, 0, 0] == 0 and (conditioned[1, 7:11, 7:11] == 2).all()
    assert conditioned[3, 0, 2] == 5 and (conditioned[3, 9:13, 3:7] == 3).all()
    # Unlabelled slices take the outline of the nearest labelled slice of the stack (slice 0: slice 1's).
    assert np.array_equal(conditioned[0] > 0, conditioned[1] > 0) and set(np.unique(conditioned[0])) == {0, 5}
    assert set(np.unique(conditioned[2])) == {0, 5}
    # A stack without any label takes the largest training outline.
    empty = outline_for(np.zeros((2, 16, 16), np.uint8), training, body_index=5)
    assert (empty == 5).sum(axis=(1, 2)).tolist() == [(training[0] > 0).sum()] * 2


@trained_ahead
def body_run(folder, phantom_dataset):
    """A tiny conditional run with --body (6 steps)."""
    run = folder / "run"
    result = ragan("train", "--dataset", phantom_dataset, "--out", run, *TINY, "--mode", "conditional", "--body")
    assert result.returncode == 0, result.stdout + result.stderr
    return run


def test_a_body_run_keeps_the_outline_in_its_model_and_out_of_every_label_it_writes(
    body_run, phantom_dataset, tmp_path
):
    run = body_run
    model = run / "model"
    info = json.loads((model / "model.json").read_text())
    assert info["format"] == 3 and info["body"] is True and len(info["classes"]) == 4
    data = load_cache(run / "cache", TrainSpec.load(run / "spec.json"), Reporter(stream=open(os.devnull, "w")))
    with np.load(model / "labels.npz") as stored:
        conditions = stored["labels"]
    # The model keeps the training labels with the body class (4) added on background inside each outline.
    assert np.array_equal(conditions, condition_labels(data.images, data.labels, 4))
    assert 0.2 < (conditions == 4).mean() < 0.8 and np.array_equal(
        conditions[data.labels > 0], data.labels[data.labels > 0]
    )

    generated = ragan("generate", model, "--count", "6", "--out", tmp_path / "count")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    finished = events_of(generated.stdout)[-1]
    assert sorted(finished["class_shares"]) == ["background", "lesion", "organ", "vessel"]
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "count" / "synthetic_label.nrrd")))
    assert set(np.unique(label)) <= {0, 1, 2, 3} and (label > 0).any()
    cases = sorted((tmp_path / "count" / "nnunet" / "labelsTr").iterdir())
    assert len(cases) == 6 and max(sitk.GetArrayFromImage(sitk.ReadImage(str(c))).max() for c in cases) <= 3

    given = sorted((phantom_dataset / "labelsTr").iterdir())[0]
    painted = ragan("generate", model, "--labels", given, "--out", tmp_path / "labels")
    assert painted.returncode == 0, painted.stdout + painted.stderr
    image = sitk.ReadImage(str(tmp_path / "labels" / "images" / given.name.replace(".nii.gz", ".nrrd")))
    assert image.GetSize() == sitk.ReadImage(str(given)).GetSize()


def test_body_without_the_conditional_mode_is_refused(phantom_dataset, tmp_path):
    result = ragan("train", "--dataset", phantom_dataset, "--out", tmp_path / "run", *TINY, "--body")
    assert result.returncode == 2 and "--body needs --mode conditional" in result.stdout + result.stderr
    assert not (tmp_path / "run").exists()
