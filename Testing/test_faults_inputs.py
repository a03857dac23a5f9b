"""Fault injection, inputs: broken files, impossible headers, bad options, labels and model.json that cannot work,
unreadable folders, and input paths that must not reach the run folder. Each fault is refused with exit code 2 and a
message naming the file or the option, before anything is written; the user's files stay byte-identical."""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from ragan_testing import REPOSITORY, TINY, events_of, phantom_pair, ragan, trained_ahead, write_volume

from RaGANLib.cli import main
from RaGANLib.data import phantom
from RaGANLib.data.image_files import _physical_memory
from RaGANLib.data.inputs import find_cases
from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec


def fingerprints(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def limit_memory(gigabytes: float = 3.0):
    """For a child that must refuse before it allocates: without the check it fails to allocate instead."""
    limit = int(gigabytes * 2**30)
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def assert_refused(tmp_path: Path, arguments, names: str, words: str, inputs: Path, **popen) -> dict:
    """`ragan train ARGUMENTS` exits 2 with one error naming `names` and saying `words`; no run folder is made and
    every file under `inputs` is byte-identical."""
    before = fingerprints(inputs)
    run = tmp_path / "run"
    result = ragan("train", *arguments, "--out", run, timeout=60, **popen)
    errors = [e for e in events_of(result.stdout) if e["event"] == "error"]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(errors) == 1 and errors[0]["kind"] == "bad_input"
    assert names in errors[0]["message"] and words in errors[0]["message"], errors[0]["message"]
    assert not run.exists(), "a refused run must leave nothing behind"
    assert fingerprints(inputs) == before, "the user's files must stay byte-identical"
    return errors[0]


def write_case(folder: Path, ending: str, compressed: bool) -> tuple[Path, Path]:
    image, label = phantom.make_case(0, (8, 64, 64))
    paths = []
    for kind, array in (("image", image), ("label", label)):
        volume = sitk.GetImageFromArray(array)
        volume.SetSpacing(phantom.SPACING)
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(folder / f"case_{kind}{ending}")
        sitk.WriteImage(volume, str(paths[-1]), useCompression=compressed)
    return paths[0], paths[1]


# Item 8: a truncated file is refused, whatever its format (a truncated .nii.gz and .nii used to train on zeros).
TRUNCATED = {
    "nii.gz": (".nii.gz", True),
    "nii": (".nii", False),
    "nrrd-raw": (".nrrd", False),
    "nrrd-gzip": (".nrrd", True),
    "mha-raw": (".mha", False),
    "mha-compressed": (".mha", True),
}


@pytest.mark.parametrize("kind", sorted(TRUNCATED))
def test_truncated_image_is_refused_by_name(tmp_path, kind):
    image, label = write_case(tmp_path / "in", *TRUNCATED[kind])
    data = image.read_bytes()
    image.write_bytes(data[: len(data) * 2 // 3])
    assert_refused(tmp_path, ["--pair", image, label, *TINY], str(image), "it is truncated", tmp_path / "in")


def test_truncated_label_and_damaged_gzip_are_refused_by_name(tmp_path):
    image, label = write_case(tmp_path / "in", ".nii.gz", True)
    data = label.read_bytes()
    label.write_bytes(data[:-20])  # only the end of the stream is missing
    assert_refused(tmp_path, ["--pair", image, label, *TINY], str(label), "it is truncated", tmp_path / "in")


# Item 9: a header that declares a huge volume is refused from the header, before anything is allocated.
def test_header_declaring_more_than_the_file_holds_is_refused_before_allocating(tmp_path):
    image, label = phantom_pair(tmp_path / "in", 0)
    header = "NRRD0004\ntype: short\ndimension: 3\nsizes: 3000 3000 300\nspacings: 1 1 1\nendian: little\n"
    for encoding in ("raw", "gzip"):
        image.write_bytes(f"{header}encoding: {encoding}\n\n".encode() + bytes(180))
        error = assert_refused(
            tmp_path, ["--pair", image, label], str(image), "3000x3000x300", tmp_path / "in", preexec_fn=limit_memory()
        )
        assert "5.4 GB" in error["message"] and "holds only" in error["message"]


def test_volume_larger_than_memory_allows_is_refused_before_allocating(tmp_path):
    memory = _physical_memory()
    if not memory:
        pytest.skip("this platform does not tell its physical memory; the memory check is skipped there")
    _, label = phantom_pair(tmp_path / "in", 0)
    image = tmp_path / "big" / "huge.nrrd"  # not among the fingerprinted inputs: hashing it would read gigabytes
    image.parent.mkdir()
    side = int((memory / 8) ** (1 / 3)) + 2  # as float32, more than half of the memory
    header = f"NRRD0004\ntype: short\ndimension: 3\nsizes: {side} {side} {side}\nencoding: raw\nendian: little\n\n"
    with open(image, "wb") as handle:  # a sparse file: as long as declared, taking no disk space
        handle.write(header.encode())
        handle.truncate(len(header) + side**3 * 2)
    error = assert_refused(
        tmp_path, ["--pair", image, label], str(image), "of memory", tmp_path / "in", preexec_fn=limit_memory()
    )
    assert f"{side}x{side}x{side}" in error["message"]


# Item 10: every numeric option is checked; NaN and infinity are refused everywhere, naming the option.
BAD_OPTIONS = [
    (["--lr", "nan"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--augment", "1.5"], "--augment"),
    (["--augment", "nan"], "--augment"),
    (["--r1-gamma", "-1"], "--r1-gamma"),
    (["--r1-gamma", "inf"], "--r1-gamma"),
    (["--class-balance", "1.5"], "--class-balance"),
    (["--class-balance", "nan"], "--class-balance"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**32)], "--seed"),
    (["--empty-ratio", "nan"], "--empty-ratio"),
    (["--spacing", "inf"], "--spacing"),
    (["--spacing", "nan"], "--spacing"),
    (["--ct-window", "100", "inf"], "--ct-window"),
    (["--ct-window", "100", "nan"], "--ct-window"),
    (["--steps", "0"], "--steps"),
    (["--batch", "-4"], "--batch"),
    (["--log-every", "0"], "--log-every"),
    (["--width", "2"], "--width"),
    (["--score-every", "-1"], "--score-every"),
]


@pytest.mark.parametrize("flags, option", BAD_OPTIONS, ids=[" ".join(f) for f, _ in BAD_OPTIONS])
def test_bad_numeric_option_is_refused_naming_it(tmp_path, capsys, flags, option):
    image, label = phantom_pair(tmp_path / "in", 0)
    before = fingerprints(tmp_path / "in")
    code = main(["train", "--pair", str(image), str(label), *flags, "--out", str(tmp_path / "run"), "--events", "json"])
    errors = [e for e in events_of(capsys.readouterr().out) if e["event"] == "error"]
    assert code == 2 and len(errors) == 1 and option in errors[0]["message"], errors
    assert not (tmp_path / "run").exists() and fingerprints(tmp_path / "in") == before


BAD_SPEC_VALUES = {
    "ema_halflife": 0,
    "lr": "fast",
    "steps": 2.5,
    "augment": -0.1,
    "keep_checkpoints": 0,
    "xla": "yes",
    "class_balance": -0.5,
    "width": 16.5,
    "score_every": 2.5,
}


@pytest.mark.parametrize("option", sorted(BAD_SPEC_VALUES))
def test_bad_option_in_a_spec_file_is_refused_naming_it(tmp_path, capsys, option):
    image, label = phantom_pair(tmp_path / "in", 0)
    spec = tmp_path / "in" / "spec.json"
    spec.write_text(json.dumps({"pairs": [[str(image), str(label)]], option: BAD_SPEC_VALUES[option]}))
    code = main(["train", "--spec", str(spec), "--out", str(tmp_path / "run"), "--events", "json"])
    errors = [e for e in events_of(capsys.readouterr().out) if e["event"] == "error"]
    assert code == 2 and len(errors) == 1 and f"{option} must" in errors[0]["message"], errors
    assert "spec.json" in errors[0]["message"] and not (tmp_path / "run").exists()


def test_nan_in_a_spec_file_is_refused(tmp_path):
    image, label = phantom_pair(tmp_path / "in", 0)
    spec = tmp_path / "in" / "spec.json"
    spec.write_text(json.dumps({"pairs": [[str(image), str(label)]], "ema_halflife": float("nan")}))  # a NaN token
    assert_refused(tmp_path, ["--spec", spec], "ema_halflife", "finite", tmp_path / "in")


@pytest.mark.parametrize(
    "arguments, flag",
    [
        (["generate", "MODEL", "--seed", "-1", "--out", "OUT"], "--seed"),
        (
            ["evaluate", "--synthetic", "MODEL", "--real", "R", "--held-out", "H", "--out", "OUT", "--seed", "-2"],
            "--seed",
        ),
        (
            ["evaluate", "--synthetic", "MODEL", "--real", "R", "--held-out", "H", "--out", "OUT", "--size", "100"],
            "--size",
        ),
        (
            ["evaluate", "--synthetic", "MODEL", "--real", "R", "--held-out", "H", "--out", "OUT", "--count", "10**9"],
            "--count",
        ),
    ],
    ids=["generate-seed", "evaluate-seed", "evaluate-size", "evaluate-count"],
)
def test_generate_and_evaluate_refuse_bad_seed_size_and_count(tmp_path, capsys, arguments, flag):
    model = tmp_path / "model"
    model.mkdir()
    arguments = [a.replace("MODEL", str(model)).replace("OUT", str(tmp_path / "out")) for a in arguments]
    arguments = [str(10**9) if a == "10**9" else a for a in arguments]
    code = main([*arguments, "--events", "json"])
    errors = [e for e in events_of(capsys.readouterr().out) if e["event"] == "error"]
    assert code == 2 and len(errors) == 1 and errors[0]["message"].startswith(flag), errors
    assert not (tmp_path / "out").exists()


# Item 11: label values and class names that would fail after training are refused before it.
def test_label_value_above_65535_is_refused_naming_the_file(tmp_path):
    image, label = phantom_pair(tmp_path / "in", 0)
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(label))).astype(np.uint32)
    values[values == 2] = 70000
    write_volume(label, values, phantom.SPACING)
    error = assert_refused(tmp_path, ["--pair", image, label, *TINY], str(label), "70000", tmp_path / "in")
    assert "65535" in error["message"]


def test_duplicate_class_names_are_refused(tmp_path, phantom_dataset):
    image, label = phantom_pair(tmp_path / "in", 0)
    names = ["--label-name", "1=organ", "--label-name", "2=organ"]
    assert_refused(tmp_path, ["--pair", image, label, *names, *TINY], "'organ'", "both named", tmp_path / "in")
    # The dataset.json names 1=organ, 2=lesion, 3=vessel; a --label-name that repeats one of them is refused too.
    arguments = ["--dataset", phantom_dataset, "--label-name", "2=organ", *TINY]
    assert_refused(tmp_path, arguments, "'organ'", "both named", phantom_dataset)


def test_dataset_json_that_does_not_name_a_label_value_is_refused(tmp_path, phantom_dataset):
    dataset = tmp_path / "Dataset004_Unnamed"
    shutil.copytree(phantom_dataset, dataset)
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "organ": 1}  # the label files also hold 2
    (dataset / "dataset.json").write_text(json.dumps(meta))
    error = assert_refused(tmp_path, ["--dataset", dataset, *TINY], "dataset.json", "value 2", dataset)
    assert "labelsTr" in error["message"], "the message names a label file that holds the value"


# Item 13: a CSV written by Excel (UTF-8 with a byte order mark), and a file the user may not read.
def test_pairs_file_with_a_byte_order_mark_reads_its_header_as_a_header(tmp_path):
    image, label = phantom_pair(tmp_path / "scans", 0)
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"image,label\nscans/{image.name},scans/{label.name}\n", encoding="utf-8-sig")
    listed = tmp_path / "pairs.json"
    listed.write_text(json.dumps([{"image": f"scans/{image.name}", "label": f"scans/{label.name}"}]), "utf-8-sig")
    for pairs in (csv, listed):
        before = pairs.read_bytes()
        cases, _, _ = find_cases(TrainSpec(pairs_file=str(pairs)))
        assert [(c.image.resolve(), c.label.resolve()) for c in cases] == [(image.resolve(), label.resolve())]
        assert pairs.read_bytes() == before


def test_file_in_a_folder_without_permission_is_called_unreadable_not_missing(tmp_path):
    """Root reads every file, so there the child runs without the capabilities that let it (setpriv)."""
    image, label = phantom_pair(tmp_path / "locked", 0)
    command = [sys.executable, "-m", "RaGANLib", "train", "--pair", image, label, "--out", tmp_path / "run"]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root, and setpriv (to drop root's right to read any file) is not installed")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    (tmp_path / "locked").chmod(0o000)
    try:
        if os.access(image, os.R_OK) and os.geteuid() != 0:
            pytest.skip("this user can read files in a folder without permission")
        result = subprocess.run(
            [*map(str, command), "--events", "json"], capture_output=True, text=True, timeout=60, cwd=REPOSITORY
        )
    finally:
        (tmp_path / "locked").chmod(0o755)
    if "setpriv:" in result.stderr:
        pytest.skip(f"setpriv cannot drop root's capabilities here: {result.stderr.strip()}")
    errors = [e for e in events_of(result.stdout) if e["event"] == "error"]
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(image) in errors[0]["message"] and "permission denied" in errors[0]["message"], errors
    assert "does not exist" not in errors[0]["message"]
    assert not (tmp_path / "run").exists()


# Item 12: model.json is checked against one schema before anything is sampled; generator stays in the folder.
PATIENT = "Doe^Jane_19700101"  # a patient-like name planted in the input paths (item 14)


@trained_ahead
def trained_run(root, phantom_dataset):
    """A one-step real joint run on one case whose folder and file names hold a patient's name, with the label on a grid
    slightly off the image's (so that the resampling notice is written); joint, so that a model.json calling it
    conditional is a fault."""
    folder = root / PATIENT
    image, label = phantom_pair(folder, 0)
    image = image.rename(folder / f"{PATIENT}_ct.nrrd")
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(label)))
    label.unlink()
    label = write_volume(folder / f"{PATIENT}_seg.nrrd", values, phantom.SPACING, origin=(0.5, 0.0, 0.0))
    # One step writes a model and every kind of run file (checkpoint, preview, events, log); a second one would only
    # trace the train step without R1 as well (a third of a tiny run's CPU time).
    one_step = ["--steps", "1", "--checkpoint-every", "1", "--preview-every", "1"]
    result = ragan("train", "--pair", image, label, *TINY, *one_step, "--out", root / "run")
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "run", result


MODEL_FAULTS = {
    "json-list": (lambda info: [info], "JSON object"),
    "missing-key": (lambda info: {k: v for k, v in info.items() if k != "intensity"}, "intensity"),
    "class-value": (
        lambda info: {**info, "classes": [info["classes"][0], {**info["classes"][1], "value": -1}]},
        "classes[1].value",
    ),
    "class-count": (lambda info: {**info, "classes": info["classes"][:2]}, "classes"),
    "duplicate-name": (
        lambda info: {
            **info,
            "classes": [*info["classes"][:2], {**info["classes"][2], "name": info["classes"][1]["name"]}],
        },
        "classes[2].name",
    ),
    "latent-negative": (lambda info: {**info, "latent_size": -5}, "latent_size"),
    "latent-string": (lambda info: {**info, "latent_size": "128"}, "latent_size"),
    "latent-mismatch": (lambda info: {**info, "latent_size": 64}, "latent_size"),
    "spacing": (lambda info: {**info, "slice": {**info["slice"], "spacing": [0.0, float("nan")]}}, "slice.spacing"),
    "modality": (lambda info: {**info, "modality": "pet"}, "modality"),
    "newer-format": (lambda info: {**info, "format": 99}, "newer"),
    "newer-keras": (lambda info: {**info, "versions": {**info["versions"], "keras": "3.99.0"}}, 'keras>=3.99"'),
    "keras-version": (lambda info: {**info, "versions": {**info["versions"], "keras": 3.15}}, "versions.keras"),
    "generator-elsewhere": (lambda info: {**info, "generator": "/tmp/other/generator.keras"}, "generator"),
    "generator-parent": (lambda info: {**info, "generator": "../model/generator.keras"}, "generator"),
    "mode": (lambda info: {**info, "mode": "painted"}, "mode"),
    "conditional-without-labels": (lambda info: {**info, "mode": "conditional"}, "labels"),
    "conditional-on-a-joint-generator": (lambda info: {**info, "mode": "conditional", "labels": "labels.npz"}, "mode"),
}


@pytest.mark.parametrize("fault", sorted(MODEL_FAULTS))
def test_model_json_that_does_not_fit_the_schema_is_refused_naming_the_field(trained_run, tmp_path, fault):
    run, _ = trained_run
    model = tmp_path / "model"
    shutil.copytree(run / "model", model)
    change, field = MODEL_FAULTS[fault]
    (model / "model.json").write_text(json.dumps(change(json.loads((model / "model.json").read_text()))))
    before = fingerprints(model)
    result = ragan("generate", model, "--count", "2", "--out", tmp_path / "out", timeout=120)
    errors = [e for e in events_of(result.stdout) if e["event"] == "error"]
    assert result.returncode == 2, result.stdout + result.stderr
    assert "model.json" in errors[0]["message"] and field in errors[0]["message"], errors[0]["message"]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*")), "nothing written"
    assert fingerprints(model) == before


# Item 14: the run folder holds no input path or file name; only spec.json names the inputs.
def test_run_folder_holds_no_input_path_or_name_outside_spec_json(trained_run):
    run, result = trained_run
    notices = [e["message"] for e in events_of(result.stdout) if e["event"] == "notice"]
    assert any(m.startswith("case 1 of 1: the label") and "resampled" in m for m in notices), notices
    planted = [PATIENT.encode(), b"_ct.nrrd", b"_seg.nrrd"]
    found = [
        path.relative_to(run)
        for path in run.rglob("*")
        if path.is_file() and path.name != "spec.json" and any(p in path.read_bytes() for p in planted)
    ]
    assert not found, f"input names in the run folder: {found}"
    assert PATIENT in (run / "spec.json").read_text(), "spec.json keeps the inputs, to resume and reproduce"


def test_a_path_in_an_error_after_the_run_folder_exists_reaches_stdout_only(tmp_path):
    shown = tmp_path / "stdout.txt"
    with open(shown, "w") as stream:
        reporter = Reporter(json_lines=True, stream=stream)
        reporter.keep_private([f"/data/{PATIENT}/ct.nrrd"])
        reporter.notice("early, before the run folder exists")
        (tmp_path / "run").mkdir()
        reporter.attach(tmp_path / "run")
        reporter.emit("error", kind="bad_input", message=f"image '/data/{PATIENT}/ct.nrrd' changed while training")
        reporter.log(f"Traceback: File /data/{PATIENT}/ct.nrrd\n")
    assert PATIENT in shown.read_text(), "the person at the terminal still learns which file"
    for name in ("events.jsonl", "train.log"):
        text = (tmp_path / "run" / name).read_text()
        assert PATIENT not in text and "image '<input>' changed" in text, text
