"""Input forms and bad input: a user's files come in as a dataset folder, a pairs list or explicit pairs; anything
that cannot be used is refused with exit code 2, one message naming the file and the problem, and no run folder."""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from ragan_testing import events_of, phantom_pair, ragan, write_volume

from RaGANLib.data.inputs import find_cases, read_image
from RaGANLib.data.prepare import survey
from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec


def case_count(spec: TrainSpec) -> int:
    return len(survey(spec, Reporter(stream=open("/dev/null", "w"))).cases)


def test_dataset_folder_pairs_by_case_id_and_reads_label_names(phantom_dataset):
    cases, names, channel = find_cases(TrainSpec(dataset=str(phantom_dataset)))
    assert [c.name for c in cases] == [f"phantom_{i:03d}" for i in range(4)]
    assert all(c.image.name == f"{c.name}_0000.nii.gz" and c.label.name == f"{c.name}.nii.gz" for c in cases)
    assert names == {"1": "organ", "2": "lesion", "3": "vessel"} and channel == "CT"


def test_pairs_file_csv_and_json_and_explicit_pairs_give_the_same_cases(tmp_path):
    pairs = [phantom_pair(tmp_path / "scans", seed) for seed in range(2)]
    rows = [(image.relative_to(tmp_path), label.relative_to(tmp_path)) for image, label in pairs]
    (tmp_path / "pairs.csv").write_text("image,label\n" + "".join(f"{i},{lbl}\n" for i, lbl in rows))
    (tmp_path / "pairs.json").write_text(json.dumps([{"image": str(i), "label": str(lbl)} for i, lbl in rows]))
    by_csv = find_cases(TrainSpec(pairs_file=str(tmp_path / "pairs.csv")))[0]
    by_json = find_cases(TrainSpec(pairs_file=str(tmp_path / "pairs.json")))[0]
    by_pair = find_cases(TrainSpec(pairs=[[str(i), str(lbl)] for i, lbl in pairs]))[0]
    expected = [(i.resolve(), lbl.resolve()) for i, lbl in pairs]
    for found in (by_csv, by_json, by_pair):
        assert [(c.image.resolve(), c.label.resolve()) for c in found] == expected


def test_dicom_series_folder_reads_as_one_volume(tmp_path):
    volume = np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16)
    folder = tmp_path / "dicom"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(4):
        piece = sitk.GetImageFromArray(volume[z : z + 1])
        piece.SetSpacing((0.7, 0.7, 2.0))
        piece.SetOrigin((0.0, 0.0, 2.0 * z))
        piece = piece[:, :, 0]
        for tag, value in {
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1.1",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1.2",
            "0020|0032": f"0\\0\\{2.0 * z}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0013": str(z + 1),
            "0008|0060": "CT",
        }.items():
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{z}.dcm"))
        writer.Execute(piece)
    image = read_image(folder, "image")
    assert image.GetSize() == (16, 16, 4)
    assert np.array_equal(sitk.GetArrayFromImage(image), volume)


def test_2d_image_is_one_slice(tmp_path):
    path = tmp_path / "xray.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((32, 40), 7, dtype=np.uint8)), str(path))
    assert read_image(path, "image").GetSize() == (40, 32, 1)


def test_label_on_another_grid_is_resampled_when_it_overlaps(tmp_path):
    image, _ = phantom_pair(tmp_path, 1)
    label = np.zeros((8, 32, 32), dtype=np.uint8)
    label[2:6, 10:20, 10:20] = 1
    write_volume(tmp_path / "coarse_label.nrrd", label, spacing=(3.2, 3.2, 3.0))
    messages = []

    class Collect(Reporter):
        def notice(self, message):
            messages.append(message)

    plan = survey(TrainSpec(pairs=[[str(image), str(tmp_path / "coarse_label.nrrd")]], size=64), Collect())
    assert plan.values == [0, 1]
    assert any("resampled onto the image grid" in m and m.startswith("case 1 of 1") for m in messages)
    assert not any("coarse_label" in m for m in messages), "notices go into the run folder: no input paths"


def rgb_image(path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 64, 64, 3), dtype=np.uint8), isVector=True), str(path))


def four_d_image(path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 8, 64, 64), dtype=np.int16), isVector=False), str(path))


BAD_IMAGES = {
    "missing": (lambda p: p.unlink(), "does not exist"),
    "unreadable": (lambda p: p.write_bytes(b"NRRD0004\nthis is not a header\n"), "cannot be read"),
    "rgb": (rgb_image, "values per voxel"),
    "4d": (four_d_image, "4D"),
    "nan": (lambda p: write_volume(p, np.full((8, 64, 64), np.nan, dtype=np.float32), (1.6, 1.6, 3.0)), "NaN"),
    "small": (
        lambda p: write_volume(p, np.arange(3200, dtype=np.int16).reshape(8, 20, 20), (1.6, 1.6, 3.0)),
        "smaller than",
    ),
}
BAD_LABELS = {
    "non-integer": (np.float32, 0.5, "non-integer"),
    "negative": (np.int16, -1, "negative"),
    "empty": (np.uint8, 0, "no foreground"),
}


@pytest.mark.parametrize("problem", sorted(BAD_IMAGES))
def test_bad_image_is_refused_by_name_with_exit_2_and_no_run_folder(tmp_path, problem):
    image, label = phantom_pair(tmp_path / "in", 2)
    make, words = BAD_IMAGES[problem]
    if problem == "small":
        write_volume(label, np.ones((8, 20, 20), np.uint8), (1.6, 1.6, 3.0))
    make(image)
    assert_refused(tmp_path, ["--pair", image, label, "--size", "128"], str(image), words)


@pytest.mark.parametrize("problem", sorted(BAD_LABELS))
def test_bad_label_is_refused_by_name(tmp_path, problem):
    image, label = phantom_pair(tmp_path / "in", 3)
    dtype, value, words = BAD_LABELS[problem]
    values = np.zeros((8, 64, 64), dtype=dtype)
    values[2, 10:20, 10:20] = value
    write_volume(label, values, (1.6, 1.6, 3.0))
    assert_refused(tmp_path, ["--pair", image, label], str(label), words)


def test_label_that_does_not_overlap_the_image_is_refused(tmp_path):
    image, label = phantom_pair(tmp_path / "in", 4)
    values = np.zeros((8, 64, 64), dtype=np.uint8)
    values[3, 5:9, 5:9] = 1
    write_volume(label, values, (1.6, 1.6, 3.0), origin=(500.0, 0.0, 0.0))
    assert_refused(tmp_path, ["--pair", image, label], str(label), "does not overlap")


def test_empty_dataset_folder_and_disagreeing_dataset_json_are_refused(tmp_path, phantom_dataset):
    empty = tmp_path / "Dataset002_Empty"
    (empty / "imagesTr").mkdir(parents=True)
    (empty / "labelsTr").mkdir()
    (empty / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "organ": 1}, "channel_names": {}}))
    assert_refused(tmp_path, ["--dataset", empty], str(empty), "no labelled cases")

    wrong = tmp_path / "Dataset003_Wrong"
    shutil.copytree(phantom_dataset, wrong)
    meta = json.loads((wrong / "dataset.json").read_text())
    (wrong / "dataset.json").write_text(json.dumps({**meta, "numTraining": 9}))
    assert_refused(tmp_path, ["--dataset", wrong], "dataset.json", "numTraining=9")

    (wrong / "dataset.json").write_text(json.dumps(meta))
    (wrong / "imagesTr" / "phantom_002_0000.nii.gz").unlink()
    assert_refused(tmp_path, ["--dataset", wrong], "phantom_002.nii.gz", "has no image")


def test_missing_pairs_file_is_refused(tmp_path):
    assert_refused(tmp_path, ["--pairs-file", tmp_path / "nope.csv"], "nope.csv", "does not exist")


def assert_refused(tmp_path, arguments, names: str, words: str):
    run = tmp_path / "run"
    result = ragan("train", *arguments, "--out", run, timeout=60)
    errors = [e for e in events_of(result.stdout) if e["event"] == "error"]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(errors) == 1 and errors[0]["kind"] == "bad_input"
    assert names in errors[0]["message"] and words in errors[0]["message"], errors[0]["message"]
    assert not run.exists(), "a refused run must leave nothing behind"
