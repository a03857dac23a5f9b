"""The run folder: one folder per training run, holding all that is needed to resume or reproduce it.

<run>/spec.json          the options it runs with
<run>/lock               held (OS file lock) by the one trainer working in the folder
<run>/STOP               created by anyone who wants the trainer to checkpoint and exit; one older than the
                         trainer's start (by more than STOP_SLACK_S) is left from an earlier run and ignored
<run>/.ragan.json        RaGAN's marker: this folder is a run folder (see RaGANLib.results.outputs)
<run>/cache/             prepared slices, reused on resume
<run>/checkpoints/       ckpt-<step>.npz, each written to a temp file and renamed, with a SHA-256 of its arrays inside;
                         one that fails to read or check on resume is renamed ckpt-<step>.npz.damaged
<run>/tensorboard/       TensorBoard logs
<run>/previews/          preview grids (PNG) and the newest preview volumes (NRRD)
<run>/model/             the exported generator (see RaGANLib.model.model_folder): the best-scoring step's
<run>/best.npz           the best-scoring step's EMA generator weights so far (see RaGANLib.training.best_model)
<run>/events.jsonl, <run>/train.log
"""

import errno
import json
import os
import re
import signal
import socket
import time
from pathlib import Path

from RaGANLib.errors import BadInput, DiskFull

STOP_FILE = "STOP"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # a trainer checkpoints and stops on these, as on a STOP file
STOP_SLACK_S = 2.0  # a STOP made while the trainer process was starting, before it read the clock, still counts


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the new content, never a part."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)  # a full disk gets its space back
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull.writing(path, len(data)) from None
        raise


def is_temporary(path: Path) -> bool:
    """A temp file of write_bytes_atomic (`.<name>.<process>.tmp`) or of a StackWriter (`.<name>.tmp.nrrd`)."""
    return re.fullmatch(r"\..+\.(\d+\.tmp|tmp\.nrrd)", path.name) is not None


def write_json_atomic(path: Path, data) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


class RunFolder:
    """Paths and housekeeping of one run folder."""

    def __init__(self, root: Path, started: float | None = None):
        self.root = Path(root)
        self.started = time.time() if started is None else started
        self.spec = self.root / "spec.json"
        self.cache = self.root / "cache"
        self.checkpoints = self.root / "checkpoints"
        self.tensorboard = self.root / "tensorboard"
        self.previews = self.root / "previews"
        self.model = self.root / "model"
        self.best = self.root / "best.npz"
        self.stop_file = self.root / STOP_FILE
        self._lock_handle = None

    def create(self) -> None:
        for folder in (self.root, self.cache, self.checkpoints, self.tensorboard, self.previews):
            folder.mkdir(parents=True, exist_ok=True)

    def lock(self) -> None:
        """Hold the run folder for this process; a second trainer on it is refused.

        An OS lock dies with its process, so a killed trainer never leaves the folder locked.
        """
        if self._lock_handle is not None:
            return
        handle = open(self.root / "lock", "a+")
        try:
            if os.name == "nt":
                import msvcrt

                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise BadInput(f"run folder '{self.root}' is in use by {holder}; stop that trainer first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._lock_handle = handle

    def remove_temporaries(self) -> int:
        """Delete the temp files that writes interrupted by a kill or a full disk left; returns the bytes freed.
        Only while holding the lock: then no other process is writing them."""
        freed = 0
        for folder in (self.root, self.cache, self.checkpoints, self.previews):
            for path in folder.glob(".*.tmp*") if folder.is_dir() else []:
                if is_temporary(path) and path.is_file():
                    freed += path.stat().st_size
                    path.unlink()
        return freed

    def stop_requested(self) -> bool:
        """A STOP file made since this trainer started; an older one was left by an earlier run."""
        try:
            return self.stop_file.stat().st_mtime >= self.started - STOP_SLACK_S
        except FileNotFoundError:
            return False

    def clear_stop(self) -> None:
        self.stop_file.unlink(missing_ok=True)

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"ckpt-{step:08d}.npz"

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        """Checkpoints as (step, path), newest first."""
        found = []
        for path in self.checkpoints.glob("ckpt-*.npz"):
            match = re.fullmatch(r"ckpt-(\d+)\.npz", path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found, reverse=True)

    def prune_checkpoints(self, keep: int) -> None:
        for _, path in self.list_checkpoints()[keep:]:
            path.unlink(missing_ok=True)


def block_stop_signals(block: bool) -> None:
    """Block (or unblock) STOP_SIGNALS in the calling thread; the threads it starts meanwhile inherit the block.
    `ragan train` blocks them before numpy and TensorFlow start their threads and unblocks them once RaGAN's handlers
    are in place: a stop signal then reaches the main thread only, never TensorFlow's own SIGTERM handler (see
    RaGANLib.training.distributed.join_hosts), and one that came meanwhile arrives then. Windows has no signal masks."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK if block else signal.SIG_UNBLOCK, STOP_SIGNALS)
