"""The trainer child process: start a RaGANLib command, read its events without blocking, stop it, kill it.

    job = TrainerJob(train_arguments(run_folder), python="/path/to/PythonSlicer", run_folder=run_folder)
    job.start()
    ...                         # the widget calls job.poll() from a QTimer; it never waits
    for event in job.poll():    # new events, in the order the child sent them
        show(event)
    job.request_stop()          # STOP file; after `grace_s` the whole process tree is killed
    job.state                   # JobState: what the job is doing now, or how it ended

With a trainer command (`prefix`, e.g. `ssh gpu-box /opt/ragan/.venv/bin/python -m RaGANLib` or
`docker run --gpus all -v /data/runs:/data/runs ragan`) the child is that command plus the arguments instead of the
local Python; the run folder must then be the same path on both sides, since the arguments and the STOP file name it.

Two reader threads turn the child's stdout (JSON lines) and stderr into a queue; `poll()` drains it on the caller's
thread, so the GUI thread never blocks on the child. The child runs in its own process group (POSIX) or with
`taskkill /T` (Windows), because PythonSlicer is a launcher: killing only the launcher would leave python-real running.
"""

import collections
import enum
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from RaGANModuleLib.locations import ragan_lib_parent


class JobState(enum.Enum):
    IDLE = "idle"  # made, not started
    STARTING = "starting"  # child started, no `started` event yet (TensorFlow is importing)
    RUNNING = "running"
    STOPPING = "stopping"  # stop requested; waiting for the child to checkpoint and exit
    DONE = "done"  # finished its work
    STOPPED = "stopped"  # ended on request
    FAILED = "failed"  # error event, crash or kill: `message` says what happened

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.STOPPED, JobState.FAILED)


def train_arguments(run_folder: Path, resume: bool = False) -> list[str]:
    arguments = ["train", "--spec", str(Path(run_folder) / "spec.json"), "--events", "json"]
    return arguments + ["--resume"] if resume else arguments


def generate_arguments(model_folder: Path, count: int, seed: int, out_folder: Path, add_rare: int = 0) -> list[str]:
    """`generate --count`; `add_rare` > 0 adds `--add-rare` (more rare and thin components in each layout of a
    conditional model), 0 leaves the command as it was before the option existed."""
    arguments = ["generate", str(model_folder), "--count", str(count), "--seed", str(seed)]
    if add_rare > 0:
        arguments += ["--add-rare", str(add_rare)]
    return arguments + ["--out", str(out_folder), "--events", "json"]


def paint_arguments(model_folder: Path, labels: Path, seed: int, out_folder: Path) -> list[str]:
    """`generate --labels`: a conditional model paints a synthetic volume for every label volume in `labels`."""
    arguments = ["generate", str(model_folder), "--labels", str(labels), "--seed", str(seed), "--out", str(out_folder)]
    return arguments + ["--events", "json"]


def info_arguments() -> list[str]:
    return ["info", "--events", "json"]


class TrainerJob:
    """One `python -m RaGANLib <arguments>` child and what it has reported."""

    def __init__(
        self,
        arguments: list[str],
        python: str,
        run_folder: Path | None = None,  # where a STOP file asks the child to stop (train); None: signal only
        device: str = "auto",  # "auto" lets TensorFlow pick; "cpu" hides the GPUs
        environment: dict | None = None,  # the child's base environment (default: this process's)
        grace_s: float = 15.0,  # seconds between a stop request and killing the process tree
        log_lines: int = 200,  # lines of the child's other output kept for error reports
        library_parent: Path | None = None,  # folder holding RaGANLib (default: the one shipped with the module)
        prefix: list[str] | None = None,  # a trainer command that runs `ragan` in place of `python -m RaGANLib`
    ):
        self.arguments = list(arguments)
        self.python = python
        self.run_folder = Path(run_folder) if run_folder else None
        self.device = device
        self.base_environment = dict(os.environ if environment is None else environment)
        self.grace_s = grace_s
        self.library_parent = Path(library_parent) if library_parent else None
        self.prefix = list(prefix or [])
        self.state = JobState.IDLE
        self.events: list[dict] = []
        self.output = collections.deque(maxlen=log_lines)  # stderr and non-JSON stdout lines
        self.message = ""  # why the job failed, or how it stopped
        self.exit_code: int | None = None
        self.progress: dict | None = None  # the newest progress event
        self.finished: dict | None = None  # the finished event, once it came
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._open_streams = 0
        self._stop_requested_at: float | None = None
        self._killed = False
        self._exited_at: float | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id (on POSIX also its process group's), once started."""
        return self._process.pid if self._process is not None else None

    @property
    def command(self) -> list[str]:
        return [*(self.prefix or [self.python, "-m", "RaGANLib"]), *self.arguments]

    def environment(self) -> dict:
        environment = dict(self.base_environment)
        parent = str(self.library_parent or ragan_lib_parent())
        existing = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = parent + (os.pathsep + existing if existing else "")
        environment["PYTHONUNBUFFERED"] = "1"
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if self.device == "cpu":
            environment["CUDA_VISIBLE_DEVICES"] = "-1"
        return environment

    def start(self) -> None:
        if self.state != JobState.IDLE:
            raise RuntimeError("a job starts only once")
        options = {}
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            options["start_new_session"] = True  # its own process group: killpg reaches python-real too
        if self.run_folder is not None:
            (self.run_folder / "STOP").unlink(missing_ok=True)
        try:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.environment(),
                cwd=self._working_folder(),
                text=True,
                encoding="utf-8",
                errors="replace",
                **options,
            )
        except OSError as error:
            self.state = JobState.FAILED
            self.message = f"could not start '{self.command[0]}': {error}"
            return
        self.state = JobState.STARTING
        for stream, parse in ((self._process.stdout, True), (self._process.stderr, False)):
            self._open_streams += 1
            threading.Thread(target=self._read, args=(stream, parse), daemon=True).start()

    def _working_folder(self) -> str:
        """The run folder, else the library's folder: `-m` looks in the working folder first, so it must not hold
        another RaGANLib (a source checkout would)."""
        if self.run_folder is not None and self.run_folder.is_dir():
            return str(self.run_folder)
        return str(self.library_parent or ragan_lib_parent())

    def _read(self, stream, parse_json: bool) -> None:
        """Runs on a reader thread: every line goes to the queue, as an event or as plain output."""
        try:
            for line in stream:
                line = line.rstrip("\r\n")
                event = None
                if parse_json and line.startswith("{"):
                    try:
                        event = json.loads(line)
                    except ValueError:
                        event = None
                if isinstance(event, dict) and "event" in event:
                    self._queue.put(("event", event))
                elif line:
                    self._queue.put(("output", line))
        finally:
            self._queue.put(("closed", None))

    def poll(self) -> list[dict]:
        """New events since the last call; updates `state`. Never waits."""
        new = []
        while True:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "event":
                self._take(item)
                new.append(item)
            elif kind == "output":
                self.output.append(item)
            else:
                self._open_streams -= 1
        if self.state == JobState.STOPPING and not self._killed and self._process is not None:
            if time.monotonic() - self._stop_requested_at > self.grace_s and self._process.poll() is None:
                self.output.append(f"the trainer did not stop within {self.grace_s:.0f} s; killing it")
                self.kill()
        if self._process is not None and not self.state.final:
            code = self._process.poll()
            if code is not None and self._open_streams > 0:
                # The child exited but something it started still holds the pipes: give it a moment, then end it.
                self._exited_at = self._exited_at or time.monotonic()
                if time.monotonic() - self._exited_at > 5.0:
                    self._signal(stop=False)
                    self._open_streams = 0
            if code is not None and self._open_streams == 0:
                self.exit_code = code
                self._conclude()
        return new

    def _take(self, event: dict) -> None:
        self.events.append(event)
        kind = event.get("event")
        if kind in ("started", "environment", "progress", "prepared") and self.state == JobState.STARTING:
            self.state = JobState.RUNNING
        if kind == "progress":
            self.progress = event
        elif kind == "finished":
            self.finished = event
        elif kind == "error":
            self.message = f"{event.get('message', 'unknown error')} ({event.get('kind', 'internal')})"

    def _conclude(self) -> None:
        """The child has exited: decide how the job ended."""
        code = self.exit_code
        if code == 0 and self.finished is not None and self.finished.get("reason") == "stopped":
            self.state = JobState.STOPPED
            self.message = f"stopped at step {self.finished.get('step')}"
        elif code == 0 and (self.finished is not None or self.arguments[:1] == ["info"]):
            self.state = JobState.DONE
        elif self._stop_requested_at is not None and self._killed:
            self.state = JobState.STOPPED
            self.message = f"the trainer was killed {self.grace_s:.0f} s after the stop request"
        else:
            self.state = JobState.FAILED
            if not self.message:
                if code is not None and code < 0:
                    cause = f"was killed by signal {-code}"
                elif code == 0:
                    cause = "exited without finishing"
                else:
                    cause = f"exited with code {code}"
                last = "; ".join(list(self.output)[-3:])
                self.message = f"the trainer {cause}" + (f": {last}" if last else "")

    def request_stop(self) -> None:
        """Ask the child to checkpoint and exit; `poll()` kills the process tree if it has not after `grace_s`."""
        if self._process is None or self.state.final or self.state == JobState.STOPPING:
            return
        self._stop_requested_at = time.monotonic()
        self.state = JobState.STOPPING
        if self.run_folder is not None:
            (self.run_folder / "STOP").touch()
        else:
            self._signal(stop=True)

    def kill(self) -> None:
        """End the child and everything it started, now."""
        if self._process is None:
            return
        self._killed = True
        self._signal(stop=False)

    def _signal(self, stop: bool) -> None:
        pid = self._process.pid
        if os.name == "nt":
            if stop:
                self._process.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
            return
        try:
            os.killpg(pid, signal.SIGTERM if stop else signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout_s: float, interval_s: float = 0.1) -> JobState:
        """Poll until the job ends or `timeout_s` passes (tests and the self-test; the GUI uses a timer instead)."""
        deadline = time.monotonic() + timeout_s
        while not self.state.final and time.monotonic() < deadline:
            self.poll()
            time.sleep(interval_s)
        self.poll()
        return self.state

    def log_tail(self, lines: int = 40) -> str:
        """The last lines a person needs to see why it failed: train.log if there is one, else the child's output."""
        log = self.run_folder / "train.log" if self.run_folder else None
        text = []
        if log is not None and log.is_file():
            text = log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text + list(self.output)[-lines:])
