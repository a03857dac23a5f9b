"""Training and generating for real: the `ragan` command in a subprocess on small phantom data, a few steps each.

The story: a researcher trains on scans whose headers carry a patient's name, watches the events, generates
synthetic pairs twice with the same seed, moves the model folder elsewhere and loads it safely; a run is killed and
resumed; a run is stopped with the stop file while a second trainer is refused."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from ragan_testing import REPOSITORY, SECRET, SECRET_FOLDER, TINY_NETWORKS, events_of, ragan, read_until

from RaGANLib.quality.metrics import detail_is_off, detail_verdict
from RaGANLib.spec import SPEC_VERSION, TrainSpec, default_width
from RaGANLib.training.distributed import stop_requests

EVENT_FIELDS = {
    "prepared": {"cases", "slices", "classes", "size", "spacing", "modality"},
    "started": {"run", "device", "step", "total", "resumed"},
    "progress": {"step", "total", "images_per_s", "losses", "eta_s"},
    "preview": {"step", "png", "image", "label", "fine_detail"},
    "checkpoint": {"step", "path"},
    "finished": {"reason", "step", "model"},
}


@pytest.fixture(scope="module")
def trained(two_case_run):
    """conftest.two_case_run: a tiny joint run on two phantom cases whose headers and folder name carry a patient's
    identity (the joint model's own labels and share rules are checked below; test_conditional.py has the conditional
    ones): (the folder holding the cases and `run/`, the finished `ragan train`)."""
    root, result, _ = two_case_run
    return root, result


def test_events_arrive_in_order_with_their_fields(trained):
    root, result = trained
    events = events_of(result.stdout)
    kinds = [e["event"] for e in events]
    assert kinds.index("prepared") < kinds.index("started") < kinds.index("progress") < kinds.index("finished")
    assert kinds[-1] == "finished" and "error" not in kinds and "score" not in kinds
    for event in events:
        assert event["version"] == 1 and isinstance(event["time"], float)
        assert EVENT_FIELDS.get(event["event"], set()) <= set(event), event
    steps = [e["step"] for e in events if e["event"] == "progress"]
    assert steps == list(range(1, 7))
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [3, 6]
    assert events[-1]["reason"] == "completed" and events[-1]["step"] == 6 and events[-1]["model_step"] == 6
    assert events[kinds.index("started")]["device"] == "CPU"
    assert "mixed precision needs a GPU; training in float32" in [e.get("message") for e in events]
    # the run folder keeps the same events, plus a readable log and TensorBoard files
    stored = [json.loads(line) for line in (root / "run" / "events.jsonl").read_text().splitlines()]
    assert stored == events
    assert "step 6/6" in (root / "run" / "train.log").read_text()
    assert list((root / "run" / "tensorboard").glob("events.out.tfevents.*"))
    preview = next(e for e in events if e["event"] == "preview")
    assert Path(preview["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Each preview's fine detail against real slices; a blurred or grainy one is said in words right after it.
    for index in (i for i, e in enumerate(events) if e["event"] == "preview"):
        ratio, said = events[index]["fine_detail"], events[index + 1].get("message", "")
        assert ratio > 0 and detail_is_off(ratio) == said.startswith(f"preview at step {events[index]['step']}: ")
        assert not detail_is_off(ratio) or detail_verdict(ratio) in said


def test_model_folder_describes_the_model(trained):
    root, _ = trained
    description = json.loads((root / "run" / "model" / "model.json").read_text())
    assert [(c["value"], c["name"]) for c in description["classes"]] == [
        (0, "background"),
        (1, "organ"),
        (2, "label_2"),
        (3, "label_3"),
    ]
    assert description["modality"] == "ct" and description["intensity"]["units"] == "HU"
    assert description["slice"]["size"] == 64 and description["slice"]["thickness"] == 3.0
    assert description["training"]["cases"] == 2 and len(description["training"]["content_sha256"]) == 4
    # no --width: the CPU's default, fixed in spec.json (a resume on another device keeps it) and in model.json
    assert json.loads((root / "run" / "spec.json").read_text())["width"] == 16 and description["width"] == 16
    assert description["selection"] == {"step": 6, "frechet": None, "score_every": 0, "last_step": 6}
    assert not (root / "run" / "best.npz").exists()


def test_generate_is_deterministic_and_keeps_spacing_and_label_values(trained, tmp_path):
    """Without --count, generate makes as many slices as the benchmark supports beside the training slices."""
    root, _ = trained
    model = root / "run" / "model"
    outputs, finished = [], []
    for name, seed, count in (("a", 5, ["--count", "5"]), ("b", 5, ["--count", "5"]), ("c", 6, [])):
        result = ragan("generate", model, *count, "--seed", seed, "--out", tmp_path / name)
        assert result.returncode == 0, result.stdout + result.stderr
        finished.append(events_of(result.stdout)[-1])
        outputs.append(finished[-1]["outputs"])
    slices = json.loads((model / "model.json").read_text())["training"]["slices"]
    assert finished[2]["count"] == slices // 3 > 0  # a joint model: 25% synthetic
    assert finished[2]["synthetic_share"] == {
        "synthetic": slices // 3,
        "real": slices,
        "share": round(slices // 3 / (slices + slices // 3), 4),
        "supported_share": 0.25,
        "supported_count": slices // 3,
    }
    same = [Path(outputs[i]["image"]).read_bytes() for i in (0, 1)]
    assert same[0] == same[1]
    assert Path(outputs[0]["label"]).read_bytes() == Path(outputs[1]["label"]).read_bytes()
    assert Path(outputs[2]["image"]).read_bytes() != same[0]

    description = json.loads((model / "model.json").read_text())
    image = sitk.ReadImage(outputs[0]["image"])
    label = sitk.ReadImage(outputs[0]["label"])
    assert image.GetSize() == (64, 64, 5) and label.GetSize() == (64, 64, 5)
    expected = (*description["slice"]["spacing"], description["slice"]["thickness"])
    assert np.allclose(image.GetSpacing(), expected) and np.allclose(label.GetSpacing(), expected)
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 1, 2, 3}
    assert image.GetPixelID() == sitk.sitkInt16  # HU
    dataset = json.loads((Path(outputs[0]["nnunet"]) / "dataset.json").read_text())
    assert dataset["numTraining"] == 5 and dataset["labels"] == {
        "background": 0,
        "organ": 1,
        "label_2": 2,
        "label_3": 3,
    }
    assert len(list((Path(outputs[0]["nnunet"]) / "imagesTr").iterdir())) == 5


def test_generate_reports_class_shares_and_warns_about_a_class_the_model_drops(trained, tmp_path):
    """A copy of the model whose label output is pushed away from (or towards) class 2 by a bias before the softmax:
    generate names the dropped class, and reports every class's share against the training set's."""
    import keras

    model = trained[0] / "run" / "model"
    training = json.loads((model / "model.json").read_text())["training"]["class_pixel_fraction"]
    assert training[2] > 0
    for bias, warned in ((-1e4, True), (1e4, False)):
        folder = tmp_path / f"model{bias:+.0f}"
        shutil.copytree(model, folder)
        generator = keras.saving.load_model(folder / "generator.keras", compile=False, safe_mode=True)
        kernel, biases = generator.get_layer("to_label").get_weights()
        biases[2] += bias
        generator.get_layer("to_label").set_weights([kernel, biases])
        generator.save(folder / "generator.keras")

        result = ragan("generate", folder, "--count", "6", "--out", tmp_path / f"out{bias:+.0f}")
        assert result.returncode == 0, result.stdout + result.stderr
        events = events_of(result.stdout)
        notices = [e["message"] for e in events if e["event"] == "notice"]
        assert any(n.startswith("class 'label_2' covers") for n in notices) == warned, notices
        shares = events[-1]["class_shares"]
        assert shares["label_2"] == {"synthetic": 0.0 if warned else 1.0, "training": training[2]}
        assert list(shares) == ["background", "organ", "label_2", "label_3"]


def test_generate_warns_when_synthetic_slices_would_swamp_the_training_slices(trained, tmp_path):
    model = trained[0] / "run" / "model"
    slices = json.loads((model / "model.json").read_text())["training"]["slices"]
    result = ragan("generate", model, "--count", 3 * slices, "--out", tmp_path / "many")
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    warning = [e["message"] for e in events if e["event"] == "notice" and "synthetic slices" in e["message"]]
    assert warning == [
        f"{3 * slices} synthetic slices next to {slices} real ones make a training set that is 75% synthetic if they "
        "join the slices the model was trained on. With a joint model, the phantom benchmark "
        "(docs/benchmark-phantom.md) found no harm to a U-Net's Dice up to 25% synthetic and a lower Dice beyond: use "
        f"at most {slices // 3} synthetic slices with these {slices} real ones"
    ]
    assert events[-1]["synthetic_share"]["share"] == 0.75 and events[-1]["count"] == 3 * slices


def test_model_folder_loads_with_safe_mode_in_a_fresh_process_elsewhere(trained, tmp_path):
    root, _ = trained
    moved = tmp_path / "copied_model"
    subprocess.run(["cp", "-r", str(root / "run" / "model"), str(moved)], check=True)
    code = (
        "import sys, keras, numpy as np;"
        "m = keras.saving.load_model(sys.argv[1] + '/generator.keras', safe_mode=True, compile=False);"
        "print(m(np.zeros((2, 128), 'float32')).shape)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(moved)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("(2, 64, 64, 5)")  # image + 4 classes


def test_no_patient_identity_or_source_path_reaches_model_or_outputs(trained, tmp_path):
    root, _ = trained
    result = ragan("generate", root / "run" / "model", "--count", "3", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    checked = [p for folder in (root / "run" / "model", tmp_path / "out") for p in folder.rglob("*") if p.is_file()]
    assert len(checked) >= 8
    for path in checked:
        data = path.read_bytes()
        for secret in (SECRET, SECRET_FOLDER, "PatientName", "PatientID"):
            assert secret.encode() not in data, f"{secret} found in {path}"


def start_training(arguments, run: Path, steps: int, every: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "RaGANLib", "train", *map(str, arguments), "--out", str(run), "--events", "json"]
    options = ["--size", "64", "--batch", "4", "--steps", steps, "--checkpoint-every", every, "--log-every", "1"]
    options += ["--preview-every", "1000", *TINY_NETWORKS]
    return subprocess.Popen(command + list(map(str, options)), stdout=subprocess.PIPE, text=True, cwd=REPOSITORY)


def test_killed_run_resumes_from_its_last_checkpoint_and_keeps_its_best_model(phantom_dataset, tmp_path):
    """Scored every 4 steps; killed after step 6 (the best so far, step 4's, is kept), resumed to step 12. The model
    is the best-scoring step's EMA generator, from before or after the kill; in this seeded run step 8 scores best
    and the last step worse, so the model is not the last step's, which stays a checkpoint (the joint mode: the
    scores are this seed's and this mode's)."""
    import keras

    run = tmp_path / "run"
    arguments = ["--dataset", phantom_dataset, "--class-balance", "1", "--score-every", "4"]
    process = start_training(arguments, run, steps=12, every=4)
    try:
        seen = read_until(process, lambda e: e["event"] == "progress" and e["step"] == 6)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert [e["step"] for e in seen if e["event"] == "checkpoint"] == [4]
    before = [e for e in seen if e["event"] == "score"]
    assert [(e["step"], e["best_step"]) for e in before] == [(4, 4)]
    with np.load(run / "best.npz") as kept:  # the killed run kept its best
        assert int(kept["step"]) == 4
    saved = json.loads((run / "spec.json").read_text())
    assert saved["class_balance"] == 1.0 and saved["width"] == 16
    del saved["width"]  # as a RaGAN before --width wrote it: such a run resumes with the (CPU) width it had
    (run / "spec.json").write_text(json.dumps(saved | {"version": 1}))

    result = ragan("train", "--resume", "--out", run, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    started = next(e for e in events if e["event"] == "started")
    assert started["resumed"] is True and started["step"] == 4 and started["total"] == 12
    assert [e["step"] for e in events if e["event"] == "progress"][0] == 5
    assert events[-1]["event"] == "finished" and events[-1]["step"] == 12
    assert any("reusing" in e.get("message", "") for e in events if e["event"] == "notice")

    for flag, value in (("--size", "128"), ("--width", "32")):
        changed = ragan("train", "--resume", "--out", run, flag, value, timeout=60)
        assert changed.returncode == 2 and f"other {flag[2:]}" in events_of(changed.stdout)[-1]["message"]
    scores = before + [e for e in events if e["event"] == "score"]
    assert [e["step"] for e in scores] == [4, 8, 12]
    assert any(b"quality/frechet" in p.read_bytes() for p in (run / "tensorboard").glob("events.out.tfevents.*"))
    best = min(scores, key=lambda e: e["frechet"])
    assert all((e["best_step"], e["best_frechet"]) == (best["step"], best["frechet"]) for e in scores[2:])
    assert (events[-1]["model_step"], events[-1]["frechet"]) == (best["step"], best["frechet"])
    assert best["step"] != 12 and scores[2]["frechet"] > best["frechet"], "a later step scored worse"
    description = json.loads((run / "model" / "model.json").read_text())
    assert description["selection"] == {
        "step": best["step"],
        "frechet": best["frechet"],
        "score_every": 4,
        "last_step": 12,
    }
    exported = keras.saving.load_model(run / "model" / "generator.keras", safe_mode=True).get_weights()
    at_best = run / "checkpoints" / f"ckpt-{best['step']:08d}.npz"
    with np.load(run / "best.npz") as kept, np.load(at_best) as checkpoint:
        assert int(kept["step"]) == best["step"]
        for index, weights in enumerate(exported):
            assert np.array_equal(weights, kept[f"ema/{index:04d}"])
            assert np.array_equal(weights, checkpoint[f"ema/{index:04d}"])
    with np.load(run / "checkpoints" / "ckpt-00000012.npz") as last:  # the last step is kept, and differs
        assert int(last["best/step"]) == best["step"]
        assert not all(np.array_equal(w, last[f"ema/{i:04d}"]) for i, w in enumerate(exported))


def test_stop_file_ends_the_run_with_a_checkpoint_and_a_second_trainer_is_refused(phantom_dataset, tmp_path):
    run = tmp_path / "run"
    process = start_training(["--dataset", phantom_dataset], run, steps=100000, every=100000)
    try:
        stop_while_refusing_a_second_trainer(process, phantom_dataset, run)
    finally:
        process.kill()
        process.wait()


def stop_while_refusing_a_second_trainer(process, phantom_dataset, run):
    read_until(process, lambda e: e["event"] == "progress" and e["step"] >= 2)
    second = ragan("train", "--dataset", phantom_dataset, "--out", run, "--resume", timeout=60)
    assert second.returncode == 2
    assert "in use" in events_of(second.stdout)[-1]["message"]

    (run / "STOP").touch()
    stopped_at = time.monotonic()
    rest = read_until(process, lambda e: e["event"] == "finished")
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - stopped_at < 30
    assert rest[-1]["reason"] == "stopped"
    checkpoint = next(e for e in rest if e["event"] == "checkpoint")
    assert checkpoint["step"] == rest[-1]["step"] and Path(checkpoint["path"]).exists()
    assert (run / "model" / "generator.keras").exists() and not (run / "STOP").exists()


def test_a_spec_from_before_the_width_option_has_the_cpu_width_and_a_new_one_the_devices():
    old = TrainSpec.from_json({"dataset": "data", "size": 256, "version": 1}, "old spec")
    new = TrainSpec.from_json({"dataset": "data", "size": 256}, "new spec")
    assert old.width == 12 and new.width is None and new.version == SPEC_VERSION
    assert default_width(256, gpu=False) == 12 and default_width(64, gpu=True) == 32


def test_stop_requests_catch_signals_only_while_training():
    before = signal.getsignal(signal.SIGTERM)
    with stop_requests() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop["signal"] == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before  # a program that trains several runs can be stopped again


def test_class_balance_puts_a_rare_class_in_the_batches_and_draws_the_same_batches_on_resume():
    """40 slices hold the organ, one of them a lesion as well: drawn uniformly, a batch of 4 holds the lesion one time
    in ten; with --class-balance 0.5 most batches hold it. A run resumed at step 30 draws the batches it would have."""
    import tensorflow as tf

    from RaGANLib.data.prepare import PreparedData
    from RaGANLib.events import Reporter
    from RaGANLib.spec import TrainSpec
    from RaGANLib.training.trainer import GanTrainer

    labels = np.zeros((40, 64, 64), np.uint8)
    labels[:, 20:40, 20:40] = 1
    labels[7, 25:30, 25:30] = 2
    classes = [{"index": i, "value": i, "name": n, "color": [0, 0, 0]} for i, n in enumerate(["bg", "organ", "lesion"])]
    data = PreparedData(np.zeros((40, 64, 64), np.float16), labels, {"classes": classes})
    held = {}
    for balance in (0.0, 0.5):
        spec = TrainSpec(pairs=[["a", "b"]], size=64, batch=4, steps=100, class_balance=balance, mode="joint")
        trainer = GanTrainer(spec, data, tf.distribute.get_strategy(), Reporter())
        batches = [np.asarray(labels) for _, labels, _, _ in trainer.dataset(data, 0)]
        held[balance] = np.mean([(batch == 2).any() for batch in batches])
        resumed = [np.asarray(labels) for _, labels, _, _ in trainer.dataset(data, 30)]
        assert len(resumed) == 70 and all(np.array_equal(a, b) for a, b in zip(batches[30:], resumed))
    assert held[0.0] < 0.2 and held[0.5] > 0.5, held


def test_class_intensity_gap_measures_each_classs_mean_and_spread_against_the_real_batch():
    import tensorflow as tf

    from RaGANLib.training.losses import class_intensity_gap

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (4, 16, 16))
    images = np.where(labels == 1, 0.3, -0.6).astype("float32") + rng.normal(0, 0.05, labels.shape).astype("float32")
    one_hot = np.eye(4, dtype="float32")[labels]  # class 3 is in neither batch: it adds nothing

    def gap(fake_images):
        fake = tf.concat([fake_images[..., None], one_hot], axis=-1)
        return float(class_intensity_gap(fake, tf.constant(images), tf.constant(labels), 4))

    assert gap(images) == pytest.approx(0, abs=1e-5)
    organ_darker = np.where(labels == 1, images - 0.2, images)  # organ 0.2 darker, its spread kept
    assert gap(organ_darker) == pytest.approx(0.2, abs=1e-4)
    flat = np.where(labels == 2, images.mean(where=labels == 2), images)  # class 2 without its noise
    assert gap(flat) == pytest.approx(float(images[labels == 2].std()), abs=1e-3)


def test_seg_consistency_trains_a_segmenter_on_the_real_pairs_and_adds_its_loss_on_synthetic_ones_to_the_generator():
    """One step from the same start with --seg-consistency 0 and 1: the discriminator's update is the same, the
    segmenter learns from the real pairs, and its loss on the synthetic pairs changes the generator's update."""
    import tensorflow as tf

    from RaGANLib.data.prepare import PreparedData
    from RaGANLib.events import Reporter
    from RaGANLib.training.trainer import GanTrainer

    rng = np.random.default_rng(0)
    labels = np.zeros((8, 64, 64), np.uint8)
    labels[:, 16:40, 20:44] = 1
    images = np.where(labels == 1, 0.4, -0.5) + rng.normal(0, 0.05, labels.shape)
    classes = [{"index": i, "value": i, "name": n, "color": [0, 0, 0]} for i, n in enumerate(["bg", "organ"])]
    data = PreparedData(images.astype(np.float16), labels, {"classes": classes})
    after = {}
    for weight in (0.0, 1.0):
        spec = TrainSpec(pairs=[["a", "b"]], size=64, batch=4, steps=1, width=8, seg_consistency=weight)
        trainer = GanTrainer(spec, data, tf.distribute.get_strategy(), Reporter())
        segmenter = trainer.segmenter and [w.numpy() for w in trainer.segmenter.weights]
        losses = trainer._replica_step(*next(trainer.dataset(data, 0)))  # eager: no trace to wait for
        after[weight] = (
            [w.numpy() for w in trainer.generator.weights],
            [w.numpy() for w in trainer.discriminator.weights],
        )
        if weight:
            assert losses["seg_real"] > 0 and losses["seg_fake"] > 0
            changed = [not np.array_equal(a, w.numpy()) for a, w in zip(segmenter, trainer.segmenter.weights)]
            assert any(changed)
        else:
            assert trainer.segmenter is None and "seg_fake" not in losses
    assert all(np.array_equal(a, b) for a, b in zip(after[0.0][1], after[1.0][1]))
    assert not all(np.allclose(a, b) for a, b in zip(after[0.0][0], after[1.0][0]))
