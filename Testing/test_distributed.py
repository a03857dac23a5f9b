"""The train step runs inside a tf.distribute strategy: here MirroredStrategy over two logical CPU devices, the same
code path that `--multi-gpu` takes over GPUs, trains, checkpoints and exports."""

import subprocess
import sys

from ragan_testing import REPOSITORY, events_of

SCRIPT = """
import sys
from pathlib import Path
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec
from RaGANLib.training import train
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
spec = TrainSpec(dataset=sys.argv[1], size=64, steps=4, batch=4, checkpoint_every=2, preview_every=2, log_every=1)
train(spec, Path(sys.argv[2]), Reporter(json_lines=True), strategy=strategy)
"""


def test_mirrored_strategy_over_two_replicas_trains_and_exports(phantom_dataset, tmp_path):
    command = [sys.executable, "-c", SCRIPT, str(phantom_dataset), str(tmp_path / "run")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPOSITORY)
    assert result.returncode == 0, result.stderr[-3000:]
    events = events_of(result.stdout)
    assert next(e for e in events if e["event"] == "started")["replicas"] == 2
    assert [e["step"] for e in events if e["event"] == "progress"] == [1, 2, 3, 4]
    assert events[-1]["event"] == "finished" and events[-1]["reason"] == "completed"
    assert (tmp_path / "run" / "model" / "generator.keras").exists()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "ckpt-00000002.npz",
        "ckpt-00000004.npz",
    ]
