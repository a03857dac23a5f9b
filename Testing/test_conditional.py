"""Label-conditioned synthesis for real: `ragan train` in the conditional mode (the default) and `ragan generate`
(--count, --labels) in a subprocess on small phantom data, next to a joint model that must keep working as before.

The story: a researcher trains a conditional model, stops and resumes it (bit-identical to an uninterrupted run),
generates pairs from the training labels, paints a synthetic volume for a label volume of their own on its grid, is
refused for labels the model does not know, and paints a new lesion into a label to see it appear where it was drawn.
"""

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import SimpleITK as sitk
from PIL import Image
from ragan_testing import REPOSITORY, TINY, TINY_NETWORKS, events_of, ragan, trained_ahead

from RaGANLib.cli import build_parser, spec_from_arguments
from RaGANLib.data import phantom
from RaGANLib.spec import OLD_DEFAULTS, SPEC_VERSION, TrainSpec

SCORED = ["--score-every", "3"]
# The fixtures' conditional runs train with --seg-consistency (the default, which TINY turns off): its segmenter is in
# their checkpoints and its term in their generator loss, so the bit-identical resume below covers it too.
SEGMENTED = ["--mode", "conditional", "--seg-consistency", "1"]


@trained_ahead
def conditional(folder, phantom_dataset):
    """A tiny conditional run (6 steps, checkpoints and scores at 3 and 6)."""
    run = folder / "run"
    flags = [*TINY, *SCORED, *SEGMENTED]
    result = ragan("train", "--dataset", phantom_dataset, "--out", run, *flags)
    assert result.returncode == 0, result.stdout + result.stderr
    return run, events_of(result.stdout)


@trained_ahead
def joint(folder, phantom_dataset):
    """A tiny joint run, 2 steps, with networks half the CPU's default width."""
    run = folder / "run"
    steps = ["--size", "64", "--batch", "4", "--steps", "2", "--checkpoint-every", "2", "--preview-every", "2"]
    steps += ["--width", "8", *TINY_NETWORKS]
    result = ragan("train", "--dataset", phantom_dataset, "--out", run, *steps)
    assert result.returncode == 0, result.stdout + result.stderr
    return run


def label_volume(path, label, spacing=phantom.SPACING, direction=None, origin=(0.0, 0.0, 0.0)):
    volume = sitk.GetImageFromArray(label)
    volume.SetSpacing(spacing)
    volume.SetOrigin(origin)
    if direction:
        volume.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume, str(path))
    return path


def test_conditional_run_records_its_mode_keeps_its_labels_and_previews_label_synthetic_real(conditional):
    run, events = conditional
    assert events[-1]["event"] == "finished" and events[-1]["reason"] == "completed"
    assert json.loads((run / "spec.json").read_text())["mode"] == "conditional"
    info = json.loads((run / "model" / "model.json").read_text())
    assert info["mode"] == "conditional" and info["format"] == 2 and info["labels"] == "labels.npz"
    with np.load(run / "model" / "labels.npz") as stored:
        kept = stored["labels"]
    assert kept.dtype == np.uint8 and np.array_equal(kept, np.load(run / "cache" / "labels.npy"))
    assert sorted(stored_files(run / "model")) == ["generator.keras", "labels.npz", "model.json"]
    preview = next(e for e in events if e["event"] == "preview")
    width, height = sitk.ReadImage(preview["png"]).GetSize()[:2]
    assert width == 4 * 3 * 96  # four triplets per row: label | synthetic | real
    # --seg-consistency: the segmenter's loss on real and on synthetic pairs in every progress report, its weights
    # and optimizer state in the checkpoints, nothing of it in the model folder (listed above).
    for event in (e for e in events if e["event"] == "progress"):
        assert all(np.isfinite(event["losses"][k]) and event["losses"][k] > 0 for k in ("seg_real", "seg_fake"))
    with np.load(run / "checkpoints" / "ckpt-00000006.npz") as stored:
        assert any(k.startswith("segmenter/") for k in stored.files)
        assert any(k.startswith("s_optimizer/") for k in stored.files)


def stored_files(folder):
    return [p.name for p in folder.iterdir()]


@trained_ahead
def stopped_and_resumed(folder, phantom_dataset):
    """A conditional run of 3 steps, then resumed to 6 steps: (its folder, the first and the resumed `ragan train`)."""
    run = folder / "run"
    options = [
        *TINY[:2],
        "--batch",
        "4",
        "--checkpoint-every",
        "3",
        "--preview-every",
        "3",
        "--log-every",
        "1",
        *SCORED,
    ]
    first = ragan("train", "--dataset", phantom_dataset, *SEGMENTED, "--out", run, *options, "--steps", 3)
    return run, first, ragan("train", "--resume", "--out", run, "--steps", 6)


def test_stopped_and_resumed_conditional_run_equals_an_uninterrupted_one(conditional, stopped_and_resumed):
    uninterrupted, uninterrupted_events = conditional
    run, first, resumed = stopped_and_resumed
    assert first.returncode == 0, first.stdout + first.stderr
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert next(e for e in events_of(resumed.stdout) if e["event"] == "started")["step"] == 3
    # The best step so far and its weights go into the checkpoints too: the same score, the same model.
    keys = ("step", "frechet", "best_step", "best_frechet")
    scores = [
        [tuple(e[k] for k in keys) for e in events if e["event"] == "score"]
        for events in (uninterrupted_events, events_of(resumed.stdout))
    ]
    assert [score[0] for score in scores[0]] == [3, 6] and scores[1] == scores[0][1:]
    assert (run / "model" / "model.json").read_text() == (uninterrupted / "model" / "model.json").read_text()
    digests = []
    for folder in (uninterrupted, run):
        with np.load(folder / "checkpoints" / "ckpt-00000006.npz") as stored:
            digests.append(str(stored["sha256"]))
    assert digests[0] == digests[1]


def saved_layers(model_folder, ending: str) -> list[str]:
    """The names of the layers ending in `ending` in a model folder's saved generator (read from the Keras file)."""
    with zipfile.ZipFile(model_folder / "generator.keras") as saved:
        config = json.loads(saved.read("config.json"))
    return [layer["name"] for layer in config["config"]["layers"] if layer["name"].endswith(ending)]


def smoothing_layers(model_folder) -> list[str]:
    return saved_layers(model_folder, "_smooth")


def test_the_generator_options_against_its_defects_are_in_the_saved_model(conditional):
    run, _ = conditional
    spec = json.loads((run / "spec.json").read_text())
    assert (spec["border_padding"], spec["pixel_noise"], spec["class_intensity"]) == ("reflect", True, 1.0)
    # Every 3x3 convolution pads by mirroring: 2 per doubling (4 doublings to 64 px) and 3 per modulation (9).
    assert len(saved_layers(run / "model", "_pad")) == 2 * 4 + 3 * 9
    assert len(saved_layers(run / "model", "_noise")) == 9  # before every normalisation
    # The defaults since spec versions 4 and 5; a spec before one that does not name its options means the generator
    # (and its loss) as it was.
    unnamed = {k: v for k, v in spec.items() if k not in OLD_DEFAULTS[4] | OLD_DEFAULTS[5]}

    def read_as(version: int) -> tuple:
        found = TrainSpec.from_json(unnamed | {"version": version}, "spec")
        return found.border_padding, found.pixel_noise, found.class_intensity, found.seg_consistency

    assert read_as(SPEC_VERSION) == ("reflect", True, 1.0, 1.0)
    assert read_as(4) == ("reflect", True, 1.0, 0.0)
    assert read_as(3) == ("zero", False, 0.0, 0.0)


def test_new_runs_modulate_from_smoothed_labels_and_a_run_from_before_resumes_with_hard_ones(conditional, tmp_path):
    new, _ = conditional
    spec = json.loads((new / "spec.json").read_text())
    assert spec["smooth_labels"] is True and spec["version"] == SPEC_VERSION
    assert len(smoothing_layers(new / "model")) == 9  # every modulation: 4x4, two per doubling to 64 px
    # A run folder written before spec version 3 (no smooth_labels) resumes with the generator it was trained with.
    old = tmp_path / "run"
    shutil.copytree(new, old)
    spec = {k: v for k, v in spec.items() if k != "smooth_labels"} | {"version": 2}
    (old / "spec.json").write_text(json.dumps(spec))
    resumed = ragan("train", "--resume", "--out", old, "--steps", 7, "--score-every", "0")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert next(e for e in events_of(resumed.stdout) if e["event"] == "started")["step"] == 6
    assert json.loads((old / "spec.json").read_text())["smooth_labels"] is False  # now written out
    assert smoothing_layers(old / "model") == []


def test_generate_count_paints_moved_training_labels_and_writes_pairs_like_joint(conditional, tmp_path):
    run, _ = conditional
    found = []
    for name in ("a", "b"):
        result = ragan("generate", run / "model", "--count", 6, "--seed", 4, "--out", tmp_path / name)
        assert result.returncode == 0, result.stdout + result.stderr
        found.append(events_of(result.stdout)[-1])
    assert found[0]["class_shares"].keys() == {"background", "organ", "lesion", "vessel"}
    first, second = (found[i]["outputs"] for i in (0, 1))
    for key in ("image", "label"):
        assert open(first[key], "rb").read() == open(second[key], "rb").read()
    labels = sitk.GetArrayFromImage(sitk.ReadImage(first["label"]))
    assert labels.shape == (6, 64, 64) and set(np.unique(labels)) <= {0, 1, 2, 3} and labels.any()
    training = np.load(run / "cache" / "labels.npy")
    moved = [not any(np.array_equal(slice_, t) for t in training) for slice_ in labels]
    assert all(moved), "every layout is a training label moved, not a copy"
    assert len(list((tmp_path / "a" / "nnunet" / "imagesTr").iterdir())) == 6


def test_generate_without_count_makes_a_quarter_of_a_training_set_and_warns_beyond_half(conditional, tmp_path):
    """A conditional model's default dose is the phantom benchmark's best (25% synthetic), the warning comes only
    beyond what it found harmless (50%): as many slices as the model trained on are not warned about, more are."""
    run, _ = conditional
    slices = json.loads((run / "model" / "model.json").read_text())["training"]["slices"]
    found = {}
    for name, count in (("default", []), ("half", ["--count", slices]), ("more", ["--count", slices + 1])):
        result = ragan("generate", run / "model", *count, "--out", tmp_path / name)
        assert result.returncode == 0, result.stdout + result.stderr
        found[name] = events_of(result.stdout)
    assert found["default"][-1]["count"] == slices // 3 > 0
    assert found["default"][-1]["synthetic_share"]["supported_count"] == slices
    warnings = {
        name: [e for e in events if e["event"] == "notice" and "training set that is" in e["message"]]
        for name, events in found.items()
    }
    assert not warnings["default"] and not warnings["half"] and len(warnings["more"]) == 1
    assert f"use at most {slices} synthetic slices" in warnings["more"][0]["message"]


def test_generate_add_rare_pastes_more_lesions_and_vessels_repeatably_and_records_it(conditional, joint, tmp_path):
    run, _ = conditional
    found = {}
    for name, extra in (("plain", []), ("a", ["--add-rare", 3]), ("b", ["--add-rare", 3])):
        result = ragan("generate", run / "model", "--count", 8, "--seed", 4, *extra, "--out", tmp_path / name)
        assert result.returncode == 0, result.stdout + result.stderr
        found[name] = events_of(result.stdout)[-1]["outputs"]
    for key in ("image", "label"):
        assert open(found["a"][key], "rb").read() == open(found["b"][key], "rb").read()
    settings = json.loads(open(found["a"]["settings"]).read())
    assert settings["add_rare"] == 3 and settings["seed"] == 4 and settings["count"] == 8
    assert settings["rare_classes"] == ["lesion", "vessel"]
    assert json.loads(open(found["plain"]["settings"]).read())["add_rare"] == 0
    labels = {name: sitk.GetArrayFromImage(sitk.ReadImage(found[name]["label"])) for name in ("plain", "a")}
    assert set(np.unique(labels["a"])) <= {0, 1, 2, 3}
    for value in (2, 3):  # lesion, vessel
        assert (labels["a"] == value).sum() > (labels["plain"] == value).sum(), value

    for model, flags, expected in (
        (run / "model", ["--add-rare", 11, "--count", 2], "--add-rare must be in 0..10, got 11"),
        (joint / "model", ["--add-rare", 1, "--count", 2], "is a joint model"),
        (run / "model", ["--add-rare", 1, "--labels", found["plain"]["label"]], "--add-rare adds to"),
    ):
        refused = ragan("generate", model, *flags, "--out", tmp_path / "refused")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert expected in events_of(refused.stdout)[-1]["message"]
        assert not (tmp_path / "refused").exists()


def test_generate_labels_paints_a_volume_on_the_grid_of_the_given_label(conditional, phantom_dataset, tmp_path):
    run, _ = conditional
    _, label = phantom.make_case(11, (5, 70, 60))
    direction = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # RAS-like: reoriented for painting, then back
    given = label_volume(tmp_path / "mine" / "case_label.nii.gz", label, (1.3, 1.9, 2.5), direction, (4.0, -7.0, 1.0))
    before = given.read_bytes()
    result = ragan("generate", run / "model", "--labels", given, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = events_of(result.stdout)[-1]["outputs"]
    painted = sitk.ReadImage(f"{outputs['images']}/case_label.nrrd")
    passed = sitk.ReadImage(f"{outputs['labels']}/case_label.nrrd")
    reference = sitk.ReadImage(str(given))
    for volume in (painted, passed):
        assert volume.GetSize() == reference.GetSize()
        assert np.allclose(volume.GetSpacing(), reference.GetSpacing())
        assert np.allclose(volume.GetOrigin(), reference.GetOrigin())
        assert np.allclose(volume.GetDirection(), reference.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(passed), label)
    assert painted.GetPixelID() == sitk.sitkInt16  # HU, as the model's CT
    assert given.read_bytes() == before

    # An nnU-Net dataset folder: every volume of its labelsTr.
    result = ragan("generate", run / "model", "--labels", phantom_dataset, "--out", tmp_path / "dataset")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (tmp_path / "dataset" / "images").iterdir()) == [
        f"phantom_{n:03d}.nrrd" for n in range(4)
    ]


def test_labels_the_model_does_not_know_and_joint_models_are_refused(conditional, joint, tmp_path):
    run, _ = conditional
    _, label = phantom.make_case(12, (4, 64, 64))
    label[1, 5:8, 5:8] = 7
    given = label_volume(tmp_path / "mine" / "odd.nrrd", label)
    before = given.read_bytes()
    result = ragan("generate", run / "model", "--labels", given, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stdout + result.stderr
    message = events_of(result.stdout)[-1]["message"]
    assert str(given) in message and "value(s) 7" in message and "2 (lesion)" in message
    assert given.read_bytes() == before and not (tmp_path / "out").exists()

    result = ragan("generate", joint / "model", "--labels", given, "--out", tmp_path / "out")
    assert result.returncode == 2 and "--mode conditional" in events_of(result.stdout)[-1]["message"]
    both = ragan("generate", run / "model", "--labels", given, "--count", 3, "--out", tmp_path / "out")
    assert both.returncode == 2 and "not both" in events_of(both.stdout)[-1]["message"]
    assert not (tmp_path / "out").exists()

    damaged = tmp_path / "damaged"
    shutil.copytree(run / "model", damaged)
    (damaged / "labels.npz").write_bytes((damaged / "labels.npz").read_bytes()[:100])
    result = ragan("generate", damaged, "--count", 3, "--out", tmp_path / "out")
    assert result.returncode == 2 and "labels.npz" in events_of(result.stdout)[-1]["message"]
    assert not (tmp_path / "out").exists()


def test_joint_models_generate_as_before_also_from_a_model_json_without_mode(joint, tmp_path):
    info = json.loads((joint / "model" / "model.json").read_text())
    assert info["mode"] == "joint" and info["format"] == 1 and "labels" not in info
    assert info["width"] == 8 == json.loads((joint / "spec.json").read_text())["width"]
    with zipfile.ZipFile(joint / "model" / "generator.keras") as saved:  # the network is as wide as recorded
        layers = json.loads(saved.read("config.json"))["config"]["layers"]
    assert next(layer for layer in layers if layer["name"] == "conv64_1")["config"]["filters"] == 8
    # Mirrored padding and pixel noise are the conditional generator's: a joint one is plain, whatever its spec says.
    spec = json.loads((joint / "spec.json").read_text())
    assert (spec["border_padding"], spec["pixel_noise"]) == ("reflect", True)
    assert not [layer for layer in layers if layer["name"].endswith(("_pad", "_noise"))]
    assert sorted(stored_files(joint / "model")) == ["generator.keras", "model.json"]
    older = tmp_path / "older"
    shutil.copytree(joint / "model", older)
    del info["mode"], info["width"]  # as a RaGAN before modes and --width wrote it
    (older / "model.json").write_text(json.dumps(info))
    outputs = []
    for model, name in ((joint / "model", "new"), (older, "old")):
        result = ragan("generate", model, "--count", 3, "--out", tmp_path / name)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(events_of(result.stdout)[-1]["outputs"]["image"])
    assert open(outputs[0], "rb").read() == open(outputs[1], "rb").read()


def test_mode_is_validated_like_every_option(phantom_dataset, tmp_path):
    result = ragan("train", "--dataset", phantom_dataset, "--mode", "painted", "--out", tmp_path / "run")
    assert result.returncode == 2
    assert "--mode must be one of conditional, joint" in events_of(result.stdout)[-1]["message"]
    assert not (tmp_path / "run").exists()
    spec = {"dataset": str(phantom_dataset), "mode": 3}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = ragan("train", "--spec", tmp_path / "spec.json")
    assert result.returncode == 2 and "mode must be one of" in events_of(result.stdout)[-1]["message"]


def test_a_spec_from_before_version_3_without_a_mode_means_joint_and_its_run_resumes_as_trained(joint, tmp_path):
    """Conditional became the default with spec version 3. A spec of version 1 or 2, or without a version, that names
    no mode means joint, the default it was written under: a run started from such a spec.json resumes as the joint
    run it is, from its joint checkpoint (without a segmenter: --seg-consistency defaults to 1 since version 5), and its
    spec.json stays as written. Resumed by its flags, a run keeps its own mode, generator options and segmenter term
    too; a new run gets the defaults."""
    for old in ({"version": 1}, {"version": 2}, {}):
        assert TrainSpec.from_json({"dataset": "data", **old}, "old spec").mode == "joint"
    assert TrainSpec.from_json({"dataset": "data", "version": 3}, "new spec").mode == "conditional"
    assert TrainSpec.from_json({"dataset": "data", "version": 2, "mode": "conditional"}, "spec").mode == "conditional"

    run = tmp_path / "run"
    shutil.copytree(joint, run)
    spec = json.loads((run / "spec.json").read_text())
    assert spec["mode"] == "joint" and spec["version"] == SPEC_VERSION
    del spec["mode"], spec["version"], spec["seg_consistency"]  # as a hand-written spec.json the run was started with
    spec |= OLD_DEFAULTS[4]  # and naming the generator options' values before spec version 4
    (run / "spec.json").write_text(json.dumps(spec))
    written = (run / "spec.json").read_bytes()

    def spec_by(*flags) -> TrainSpec:
        return spec_from_arguments(build_parser().parse_args(["train", *map(str, flags)]))

    # Resumed by its flags, the run keeps its own values of the options whose default changed since (spec versions 3
    # to 5: the mode, the generator options, the segmenter's term); a flag still sets one, and a new run gets the
    # defaults.
    kept = spec_by("--dataset", spec["dataset"], "--out", run, "--resume")
    assert (kept.mode, kept.border_padding, kept.pixel_noise, kept.class_intensity) == ("joint", "zero", False, 0.0)
    assert kept.seg_consistency == 0.0
    assert (
        spec_by("--dataset", spec["dataset"], "--out", run, "--resume", "--mode", "conditional").mode == "conditional"
    )
    assert spec_by("--dataset", spec["dataset"], "--out", run, "--resume", "--pixel-noise").pixel_noise is True
    new = spec_by("--dataset", spec["dataset"], "--out", tmp_path / "new")
    assert (new.mode, new.border_padding, new.pixel_noise, new.class_intensity) == ("conditional", "reflect", True, 1.0)
    assert new.seg_consistency == 1.0
    by_flags = tmp_path / "by-flags"
    shutil.copytree(run, by_flags)
    flags = ["--dataset", spec["dataset"], "--size", 64, "--batch", 4, "--steps", 2]  # the run's; it is complete
    result = ragan("train", *flags, "--out", by_flags, "--resume")
    assert result.returncode == 0, result.stdout + result.stderr
    assert next(e for e in events_of(result.stdout) if e["event"] == "started")["resumed"] is True

    result = ragan("train", "--resume", "--out", run)
    assert result.returncode == 0, result.stdout + result.stderr
    started = next(e for e in events_of(result.stdout) if e["event"] == "started")
    assert started["resumed"] is True and started["step"] == 2
    assert json.loads((run / "model" / "model.json").read_text())["mode"] == "joint"
    assert (run / "spec.json").read_bytes() == written


def test_a_painted_lesion_changes_the_image_where_it_was_drawn(conditional, tmp_path):
    """The editing check of issue 10: the tiny conditional model paints an edited and an unedited label with one seed.
    Slices without the edit come out identical; in the edited slices the image changes inside and near the new lesion
    far more than elsewhere (about 56x after the fixture's 6 steps, 30-60x at 60 steps, about 100x at 200, when
    measured). It shows that an edit stays local; after so few steps the new lesion is not yet drawn with a lesion's
    intensity."""
    run = conditional[0]
    _, label = phantom.make_case(3, (8, 64, 64))
    zz, yy, xx = np.mgrid[0:8, 0:64, 0:64]
    centre = np.argwhere(label[4] == 1).mean(axis=0)
    drawn = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= 9) & (zz >= 3) & (zz <= 5) & (label != 2)
    edited = np.where(drawn, 2, label).astype(label.dtype)
    for name, volume in (("edited", edited), ("plain", label)):
        label_volume(tmp_path / "labels" / f"{name}.nrrd", volume)
    result = ragan("generate", run / "model", "--labels", tmp_path / "labels", "--seed", 3, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    images = [
        sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "images" / f"{n}.nrrd")))
        for n in ("edited", "plain")
    ]
    difference = np.abs(images[0].astype(np.float64) - images[1])
    assert not difference[[0, 1, 2, 6, 7]].any(), "slices without the edit must come out identical"
    near = drawn.copy()
    for _ in range(2):  # two pixels around the drawn lesion count as near it
        near |= np.roll(near, 1, 1) | np.roll(near, -1, 1) | np.roll(near, 1, 2) | np.roll(near, -1, 2)
    inside, outside = difference[near].mean(), difference[3:6][~near[3:6]].mean()
    assert inside > 3 * outside, (inside, outside)


def paint_a_lesion(*args) -> subprocess.CompletedProcess:
    """Run scripts/paint_a_lesion.py to completion, as a user would."""
    command = [sys.executable, str(REPOSITORY / "scripts" / "paint_a_lesion.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY)


def test_the_paint_a_lesion_script_draws_a_lesion_into_the_organ_and_pictures_both_paintings(
    conditional, joint, tmp_path
):
    """scripts/paint_a_lesion.py, which makes the README's picture, with a given model: a joint model and a work
    folder holding the user's files are refused (exit 2, nothing written); a conditional model paints the label slice
    and the slice with a lesion disc drawn into the organ, and the picture shows the five panels."""
    refused = paint_a_lesion("--model", joint / "model", "--work", tmp_path / "new", "--out", tmp_path / "refused.png")
    assert refused.returncode == 2 and f"model '{joint / 'model'}' is a joint model" in refused.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    run, _ = conditional
    refused = paint_a_lesion("--model", run / "model", "--work", tmp_path / "mine", "--out", tmp_path / "refused.png")
    assert refused.returncode == 2 and f"--work '{tmp_path / 'mine'}' must be a new or empty folder" in refused.stderr
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
        and (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    )

    out = tmp_path / "picture.png"
    result = paint_a_lesion("--model", run / "model", "--work", tmp_path / "work", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    plain, edited = (
        sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "work" / "labels" / f"{name}.nrrd")))[0]
        for name in ("plain", "edited")
    )
    drawn = edited != plain
    assert drawn.sum() == 49 and (plain[drawn] == 1).all() and (edited[drawn] == 2).all(), "a disc of radius 4"
    assert Image.open(out).size == (5 * 192, 192 + 22)
