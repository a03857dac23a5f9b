"""Where training runs and who stops it: the device TensorFlow sees, the tf.distribute strategy (one device, the
local GPUs, or several hosts from TF_CONFIG), the stop signals, and what the hosts of a several-host run agree on.

    with stop_requests() as stop:                      # SIGTERM/SIGINT set stop["signal"]; the loop checkpoints
        strategy = join_hosts(spec, reporter, stop["take_signals"]) if several_hosts(spec) else None
        strategy = strategy or choose_strategy(spec, reporter)
        everywhere = mean_over_workers(strategy)       # one small collective over every worker's replicas

Several hosts run the same `ragan train` on the same run folder; only the chief writes into it (trainer.py).
"""

import contextlib
import os
import signal

from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec
from RaGANLib.training.runfolder import STOP_SIGNALS, block_stop_signals


def describe_device() -> str:
    """The GPUs' names TensorFlow sees, or CPU (the `started` event's device)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return ", ".join(names)


def several_hosts(spec: TrainSpec) -> bool:
    """--multi-gpu with TF_CONFIG set (the cluster and this process's task in it, as Kubernetes and Slurm launchers
    set it): every host runs the same command on the same run folder, MultiWorkerMirroredStrategy joins them."""
    return spec.multi_gpu and bool(os.environ.get("TF_CONFIG"))


def choose_strategy(spec: TrainSpec, reporter: Reporter):
    """Several hosts: MultiWorkerMirroredStrategy; --multi-gpu with more than one local GPU: MirroredStrategy over
    them; else TensorFlow's default strategy (one device)."""
    import tensorflow as tf

    if several_hosts(spec):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if spec.multi_gpu:
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        reporter.notice(f"multi-GPU training asked for, but {len(gpus)} GPU(s) found: training on one device")
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def stop_requests():
    """While inside, SIGTERM and SIGINT only set the yielded flag (the loop then checkpoints and stops); the
    previous handlers come back afterwards, so a program that trains several runs can still be interrupted.
    `stop["take_signals"]()` installs the handlers again after a library replaced them."""
    stop = {"signal": None}

    def request_stop(number, _frame):
        stop["signal"] = signal.Signals(number).name

    def take_signals():
        return {number: signal.signal(number, request_stop) for number in STOP_SIGNALS}

    stop["take_signals"] = take_signals
    previous = take_signals()
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def join_hosts(spec: TrainSpec, reporter: Reporter, take_signals):
    """MultiWorkerMirroredStrategy for several hosts, made with the stop signals blocked in this thread (train()
    unblocks them once RaGAN's handlers are back).

    Making it starts TensorFlow's coordination service agent, which installs TensorFlow's own C++ SIGTERM handler
    (tsl's SigtermNotifier) and then waits until every host has connected. That handler only sets a flag that a
    thread polls once a second to post a preemption notice into the cluster's key-value store (for TensorFlow's
    PreemptionCheckpointHandler, which RaGAN does not use); it neither stops the process nor its collectives, and
    before the hosts are connected the notice is not even posted. A SIGTERM it takes is lost: the worker trains on to
    the end. Blocked here (and in the threads numpy and TensorFlow start, which inherit the mask: `ragan train`
    blocks the signals before importing either, runfolder.block_stop_signals), a signal stays pending until RaGAN's
    handlers are back, then stops the run before its first step."""
    reporter.notice("waiting for the other hosts of TF_CONFIG's cluster to connect")
    block_stop_signals(True)
    strategy = choose_strategy(spec, reporter)  # before any other TensorFlow op of this process
    take_signals()
    return strategy


def on_several_hosts(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def mean_over_workers(strategy):
    """A function averaging a few numbers over all replicas of all workers: one small collective."""
    import tensorflow as tf

    @tf.function
    def mean(values):
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(tf.identity, args=(values,)), axis=None)

    return lambda values: mean(tf.constant(values, tf.float32)).numpy().tolist()


def task_name(strategy) -> str:
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type} {resolver.task_id}"
