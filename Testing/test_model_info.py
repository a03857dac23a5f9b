"""The model contract (RaGANLib/model/model_info.py) without training: model.json written and read back as the same
typed value, in the file format older RaGANs wrote, each bad field refused naming it, and the intensity mapping's
inverse."""

import dataclasses
import json

import numpy as np
import pytest

from RaGANLib.errors import BadInput
from RaGANLib.model.model_info import (
    LabelClass,
    ModelInfo,
    Normalisation,
    SliceGrid,
    TrainingData,
    read_model_info,
    write_model_info,
)

INFO = ModelInfo(
    classes=(
        LabelClass(0, 0, "background", (0.0, 0.0, 0.0)),
        LabelClass(1, 3, "left kidney", (0.9, 0.3, 0.25)),
        LabelClass(2, 300, "renal tumour", (0.25, 0.55, 0.95)),
    ),
    modality="ct",
    intensity=Normalisation(-1000.0, 1000.0),
    grid=SliceGrid(64, (0.7, 0.8), 2.5, "coronal"),
    training=TrainingData(2, 40, (0.8, 0.15, 0.05), ("a" * 64, "b" * 64), 6, 4, 0),
    versions={"ragan": "0.4.0", "keras": "3.15.1"},
    mode="conditional",
    width=16,
    arch="residual",
    labels="labels.npz",
    selection={"step": 6, "frechet": None, "score_every": 0, "last_step": 6},
)


def test_model_json_written_reads_back_as_the_same_model(tmp_path):
    path = write_model_info(tmp_path, INFO)
    assert path == tmp_path / "model.json"
    assert read_model_info(tmp_path) == INFO
    assert read_model_info(tmp_path).grid.shape == (64, 64) and read_model_info(tmp_path).conditional


def test_model_json_keeps_the_format_older_ragans_wrote(tmp_path):
    """The keys and sections of format 1/2 as `model_description` wrote them before the contract was typed."""
    written = json.loads(write_model_info(tmp_path, INFO).read_text())
    assert list(written) == [
        *("format", "generator", "latent_size", "arch", "width", "mode", "labels", "classes", "modality"),
        *("intensity", "slice", "training", "versions", "selection"),
    ]
    assert written["intensity"] == {
        "forward": "clip((x - low) / (high - low) * 2 - 1, -1, 1)",
        "inverse": "(y + 1) / 2 * (high - low) + low",
        "low": -1000.0,
        "high": 1000.0,
        "per_case": False,
        "units": "HU",
    }
    assert written["slice"] == {
        "size": 64,
        "spacing": [0.7, 0.8],
        "thickness": 2.5,
        "axis": "coronal",
        "orientation": "LPS; rows top to bottom, columns left to right as displayed",
    }
    assert written["classes"][2] == {"index": 2, "value": 300, "name": "renal tumour", "color": [0.25, 0.55, 0.95]}
    joint = json.loads(write_model_info(tmp_path, dataclasses.replace(INFO, mode="joint")).read_text())
    assert joint["format"] == 1 and "labels" not in joint, "a joint model stays readable by format-1 RaGANs"
    assert written["format"] == 2 and "body" not in written, "a conditional model without --body stays format 2"
    body = json.loads(write_model_info(tmp_path, dataclasses.replace(INFO, body=True)).read_text())
    assert body["format"] == 3 and body["body"] is True, "a RaGAN of format 2 refuses a body model, not misreads it"
    assert read_model_info(tmp_path).condition_classes == len(INFO.classes) + 1


def test_a_hand_written_model_json_without_the_optional_fields_still_loads(tmp_path):
    """model.json files older than width, mode, per_case and the class shares (as tests and users wrote them)."""
    data = INFO.to_json()
    for key in ("arch", "width", "mode", "labels", "selection", "versions"):
        del data[key]
    data["format"] = 1
    del data["intensity"]["per_case"], data["training"]["class_pixel_fraction"], data["training"]["content_sha256"]
    (tmp_path / "model.json").write_text(json.dumps(data))
    info = read_model_info(tmp_path)
    assert info.mode == "joint" and info.width is None and not info.intensity.per_case and info.versions == {}
    assert info.grid == INFO.grid and info.classes == INFO.classes


BAD_FIELDS = {
    "format": (lambda d: d.update(format=0), "field format"),
    "latent_size": (lambda d: d.update(latent_size=1.5), "field latent_size"),
    "classes": (lambda d: d.update(classes=d["classes"][:1]), "field classes"),
    "classes[1].index": (lambda d: d["classes"][1].update(index=2), "field classes[1].index"),
    "classes[2].color": (lambda d: d["classes"][2].update(color=[1, 2]), "field classes[2].color"),
    "intensity.high": (lambda d: d["intensity"].update(high=-2000.0), "field intensity.high"),
    "intensity.per_case": (lambda d: d["intensity"].update(per_case="yes"), "field intensity.per_case"),
    "slice.size": (lambda d: d["slice"].update(size=63), "field slice.size"),
    "slice.thickness": (lambda d: d["slice"].update(thickness=0), "field slice.thickness"),
    "slice.axis": (lambda d: d["slice"].update(axis="oblique"), "field slice.axis"),
    "training.steps": (lambda d: d["training"].update(steps=-1), "field training.steps"),
    "training.missing": (lambda d: d["training"].pop("slices"), "no field training.slices"),
    "training.class_pixel_fraction": (
        lambda d: d["training"].update(class_pixel_fraction=[1.0]),
        "field training.class_pixel_fraction",
    ),
    "training.class_pixel_fraction[1]": (
        lambda d: d["training"]["class_pixel_fraction"].__setitem__(1, 2.0),
        "field training.class_pixel_fraction[1]",
    ),
    "training.content_sha256": (lambda d: d["training"].update(content_sha256="ab"), "field training.content_sha256"),
    "versions": (lambda d: d.update(versions=["3.15.1"]), "field versions"),
    "width": (lambda d: d.update(width=3), "field width"),
    "mode": (lambda d: d.update(mode="painted"), "field mode"),
    "body": (lambda d: d.update(body="yes"), "field body"),
    "body of a joint model": (lambda d: d.update(body=True, mode="joint"), "field body"),
}


@pytest.mark.parametrize("field", sorted(BAD_FIELDS))
def test_each_bad_field_is_refused_naming_model_json_and_the_field(tmp_path, field):
    change, expected = BAD_FIELDS[field]
    data = INFO.to_json()
    change(data)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    with pytest.raises(BadInput) as refused:
        read_model_info(tmp_path)
    assert str(path) in str(refused.value) and expected in str(refused.value), str(refused.value)
    assert refused.value.exit_code == 2 and path.read_bytes() == before


def test_the_writer_refuses_a_model_it_could_not_read_back(tmp_path):
    with pytest.raises(BadInput, match="field slice.axis"):
        write_model_info(tmp_path, dataclasses.replace(INFO, grid=SliceGrid(64, (0.7, 0.8), 2.5, "oblique")))
    assert not list(tmp_path.iterdir()), "nothing written"


def test_intensity_inverse_undoes_the_forward_mapping_inside_the_window_and_clips_outside():
    window = Normalisation(-160.0, 240.0)
    inside = np.array([-160.0, -100.0, 0.0, 40.0, 240.0])
    assert np.allclose(window.forward(inside), [-1.0, -0.7, -0.2, 0.0, 1.0])
    assert np.allclose(window.inverse(window.forward(inside)), inside)
    assert np.allclose(window.inverse(window.forward(np.array([-1000.0, 3000.0]))), [-160.0, 240.0])
