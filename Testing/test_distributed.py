"""How training scales, run on the CPU: MirroredStrategy over two logical CPU devices (the code path `--multi-gpu`
takes over GPUs), two hosts' trainers (MultiWorkerMirroredStrategy from TF_CONFIG) as two processes on 127.0.0.1,
and the float16 path of `--mixed-precision` forced on the CPU."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from ragan_testing import REPOSITORY, TINY, events_of, ragan, read_until, trained_ahead

from RaGANLib.model import model_folder

SCRIPT = """
import sys
from pathlib import Path
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec
from RaGANLib.training.trainer import train
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
spec = TrainSpec(dataset=sys.argv[1], size=64, steps=4, batch=4, checkpoint_every=2, preview_every=2, log_every=1)
train(spec, Path(sys.argv[2]), Reporter(json_lines=True), strategy=strategy)
"""


@trained_ahead
def mirrored_run(folder, phantom_dataset):
    """SCRIPT's run: (its folder, the finished process)."""
    command = [sys.executable, "-c", SCRIPT, str(phantom_dataset), str(folder / "run")]
    return folder / "run", subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPOSITORY)


def test_mirrored_strategy_over_two_replicas_trains_and_exports(mirrored_run):
    run, result = mirrored_run
    assert result.returncode == 0, result.stderr[-3000:]
    events = events_of(result.stdout)
    assert next(e for e in events if e["event"] == "started")["replicas"] == 2
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["step"] for e in progress] == [1, 2, 3, 4]
    assert all(np.isfinite(e["losses"]["seg_fake"]) for e in progress)  # the default segmenter, summed over replicas
    assert events[-1]["event"] == "finished" and events[-1]["reason"] == "completed"
    assert (run / "model" / "generator.keras").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "ckpt-00000002.npz",
        "ckpt-00000004.npz",
    ]


@trained_ahead
def float16_run(folder, phantom_dataset):
    """One step in float16 forced on the CPU, then resumed to step 2 with --xla: (the run folder, the first and the
    resumed `ragan train`)."""
    environment = {**os.environ, "RAGAN_FORCE_MIXED_PRECISION": "1"}
    run = folder / "run"
    steps = ["--steps", "1", "--checkpoint-every", "1", "--preview-every", "1"]  # float16 is slow on a CPU
    steps += ["--seg-consistency", "1"]  # the default, which TINY turns off: its segmenter computes in float32
    arguments = ["--dataset", phantom_dataset, "--mixed-precision", "--out", run, *TINY, *steps]
    first = ragan("train", *arguments, env=environment, timeout=600)
    resumed = ragan("train", "--resume", "--out", run, "--steps", "2", "--xla", env=environment, timeout=600)
    return run, first, resumed


def test_mixed_precision_forced_on_the_cpu_trains_with_loss_scaling_and_exports_float32(float16_run):
    """RAGAN_FORCE_MIXED_PRECISION runs the GPU's float16 path on the CPU: the networks compute in float16, the
    optimisers scale the losses (their dynamic loss scale is kept in the checkpoint), the run resumes with --xla, and
    the exported generator is float32 and loads."""
    run, result, resumed = float16_run
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(result.stdout)
    assert next(e for e in events if e["event"] == "started")["precision"] == "mixed_float16"
    assert not [e for e in events if "mixed precision" in e.get("message", "")]
    assert events[-1]["event"] == "finished" and events[-1]["reason"] == "completed"
    with np.load(run / "checkpoints" / "ckpt-00000001.npz") as checkpoint:
        optimizers = [checkpoint[k] for k in checkpoint.files if k.startswith(("g_optimizer/", "d_optimizer/"))]
        scalars = [float(a) for a in optimizers if a.shape == () and a.dtype.kind == "f"]
    loss_scales = [s for s in scalars if s >= 1 and np.log2(s) == round(np.log2(s))]  # the others: learning rates
    assert len(loss_scales) == 2, scalars
    # The GPU advice is --mixed-precision with --xla: XLA refused the float16 graph's resize gradient once. This is also
    # the test of `ragan train --xla` from the command line to an exported model, its step without the lazy R1 penalty
    # (test_adaptive_training compiles the float32 step with it in-process).
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = events_of(resumed.stdout)
    assert next(e for e in events if e["event"] == "started")["precision"] == "mixed_float16"
    assert events[-1]["event"] == "finished" and (events[-1]["reason"], events[-1]["step"]) == ("completed", 2)
    generator, _ = model_folder.load(run / "model")
    assert generator.dtype_policy.name == "float32"
    assert {w.dtype for w in generator.weights} == {"float32"}
    pair = generator(np.random.default_rng(0).standard_normal((2, generator.input_shape[-1])).astype(np.float32))
    assert pair.dtype == "float32" and np.all(np.isfinite(np.asarray(pair)))


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_worker(index: int, ports: list[int], dataset, run, scratch, *extra) -> subprocess.Popen:
    """One host's trainer of a two-host cluster on 127.0.0.1, started as a launcher starts it: the same command on
    every host, only TF_CONFIG's task index differs."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    environment = {
        **os.environ,
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        "TMPDIR": str(scratch),  # where a worker other than the chief keeps its copy of the slices
        "TF_NUM_INTRAOP_THREADS": "1",  # two trainers share the CPU cores
    }
    arguments = ["train", "--dataset", dataset, "--out", run, "--multi-gpu", *TINY, "--steps", "3", *extra]
    command = [sys.executable, "-m", "RaGANLib", *map(str, arguments), "--events", "json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPOSITORY, env=environment)


def start_workers(dataset, run, scratch, *extra) -> list[subprocess.Popen]:
    ports = free_ports(2)
    return [start_worker(index, ports, dataset, run, scratch, *extra) for index in range(2)]


def wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} (exit code {process.poll()})")


def test_two_hosts_train_as_one_stop_together_and_resume(phantom_dataset, tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG with two worker processes. A SIGTERM to a worker while it waits for
    the others to connect (when TensorFlow's own SIGTERM handler, which only posts a preemption notice, is in place)
    stops both before the first step. A STOP file in the shared run folder stops both at the same step (each may see
    it at another step: they agree after every step); only the chief writes into the run folder (checkpoint, events,
    model); both resume from that checkpoint and complete."""
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    ports = free_ports(2)
    worker = start_worker(1, ports, phantom_dataset, run, scratch)
    # Its server is up: TensorFlow made its SIGTERM handler before starting it, and waits for the chief to connect.
    wait_until_listening(ports[1], worker)
    worker.send_signal(signal.SIGTERM)
    chief = start_worker(0, ports, phantom_dataset, run, scratch)
    ends = [events_of(process.communicate(timeout=300)[0]) for process in (chief, worker)]
    assert [chief.returncode, worker.returncode] == [0, 0], ends
    assert [(e[-1]["event"], e[-1]["reason"], e[-1]["step"], e[-1]["model"]) for e in ends] == [
        ("finished", "stopped", 0, None)
    ] * 2
    reasons = ["another worker's stop request", "SIGTERM"]
    for events, reason in zip(ends, reasons):
        assert f"stop requested ({reason}) before step 1; nothing was trained" in [e.get("message") for e in events]
    assert list((run / "checkpoints").iterdir()) == [] and not (run / "model").exists()

    chief, worker = start_workers(phantom_dataset, run, scratch)
    read_until(worker, lambda e: e["event"] == "started")
    (run / "STOP").touch()
    ends = [events_of(process.communicate(timeout=300)[0]) for process in (chief, worker)]
    assert [chief.returncode, worker.returncode] == [0, 0], ends
    stopped = [events[-1] for events in ends]
    assert [e["event"] for e in stopped] == ["finished", "finished"] and {e["reason"] for e in stopped} == {"stopped"}
    step = stopped[0]["step"]
    assert stopped[1]["step"] == step < 3
    assert [p.name for p in (run / "checkpoints").iterdir()] == [f"ckpt-{step:08d}.npz"]
    assert (run / "model" / "generator.keras").is_file() and stopped[1]["model"] is None

    chief, worker = start_workers(phantom_dataset, run, scratch, "--resume")
    ends = [events_of(process.communicate(timeout=300)[0]) for process in (chief, worker)]
    assert [chief.returncode, worker.returncode] == [0, 0], ends
    for events in ends:
        started = next(e for e in events if e["event"] == "started")
        assert started["replicas"] == 2 and started["step"] == step and started["resumed"]
        assert events[-1]["event"] == "finished" and (events[-1]["reason"], events[-1]["step"]) == ("completed", 3)
    recorded = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [(e["worker"], e["chief"]) for e in recorded if e["event"] == "started"] == [("worker 0", True)] * 2
    assert json.loads((run / "model" / "model.json").read_text())["training"]["steps"] == 3
    assert list(scratch.iterdir()) == []  # the other worker's copy of the slices is gone
