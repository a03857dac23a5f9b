"""The event protocol: what a running command tells programs (JSON lines) and people (progress bar, log).

Every event is one JSON object with "event", "version" and "time". Events of a run are also appended to
`<run>/events.jsonl`, and a readable line for each goes to `<run>/train.log`. Readers ignore keys they do not know.
Input paths often hold patient names: those the reporter is told of (`keep_private`) reach stdout, never the run
folder.

Events: environment, started, prepared, notice, progress, preview, checkpoint, finished, error.
Every line is strict JSON: a number that is not finite (NaN, infinity) is written as null.
"""

import json
import math
import sys
import time
from pathlib import Path

PROTOCOL_VERSION = 1


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def describe(event: dict) -> str:
    """One readable line for an event, as the log and the terminal show it."""
    kind = event["event"]
    if kind == "progress":
        losses = "  ".join(f"{name} {value:.3f}" for name, value in event.get("losses", {}).items())
        fraction = event["step"] / max(1, event["total"])
        bar = "#" * int(fraction * 24) + "-" * (24 - int(fraction * 24))
        if "stage" in event:  # evaluation: units of work, not training steps
            return f"[{bar}] {fraction:4.0%}  {event['stage']}  ETA {format_duration(event['eta_s'])}"
        return (
            f"step {event['step']}/{event['total']} [{bar}] {fraction:4.0%}  {event['images_per_s']:.1f} img/s"
            f"  {losses}  ETA {format_duration(event['eta_s'])}"
        )
    if kind == "error":
        return f"error ({event['kind']}): {event['message']}"
    details = {k: v for k, v in event.items() if k not in ("event", "version", "time")}
    if kind == "notice":
        return f"note: {details['message']}"
    return f"{kind}: " + ", ".join(f"{k}={v}" for k, v in details.items())


def strict(value):
    """The value with non-finite floats replaced by None: strict JSON readers reject NaN and Infinity tokens."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    return value


class Reporter:
    """Sends events to stdout as JSON lines (`json_lines=True`) or as readable lines, and to the run folder."""

    def __init__(self, json_lines: bool = False, stream=None):
        self.json_lines = json_lines
        self.stream = stream or sys.stdout
        self.run_folder: Path | None = None
        self._bar_open = False
        self._early: list[dict] = []  # events before the run folder exists
        self._private: set[str] = set()
        self._record_failed = False

    def attach(self, run_folder: Path) -> None:
        """Append events (those so far included) to `<run>/events.jsonl` and `<run>/train.log` from now on."""
        self.run_folder = Path(run_folder)
        for record in self._early:
            self._record(record)
        self._early.clear()

    def keep_private(self, texts) -> None:
        """Replace these texts (input paths) by "<input>" in all that goes into the run folder."""
        self._private.update(str(t) for t in texts if t)

    def emit(self, event: str, **fields) -> dict:
        record = {"event": event, "version": PROTOCOL_VERSION, "time": round(time.time(), 3), **fields}
        if self.json_lines:
            print(json.dumps(strict(record), allow_nan=False), file=self.stream, flush=True)
        else:
            self._show(event, describe(record))
        if self.run_folder is None:
            self._early.append(record)
        else:
            self._record(record)
        return record

    def _record(self, record: dict) -> None:
        record = self._without_private(record)
        self._append("events.jsonl", json.dumps(strict(record), allow_nan=False) + "\n")
        self.log(describe(record) + "\n")

    def log(self, text: str) -> None:
        """Append text (an event's line, a traceback) to `<run>/train.log`, without private texts."""
        self._append("train.log", time.strftime("%Y-%m-%d %H:%M:%S ") + self._without_private(text))

    def _append(self, name: str, text: str) -> None:
        try:
            with open(self.run_folder / name, "a") as file:
                file.write(text)
        except OSError as error:  # e.g. a full disk: the event still reaches stdout, and the failure must not hide it
            if not self._record_failed:
                print(f"RaGAN cannot write to '{self.run_folder}': {error}", file=sys.stderr, flush=True)
            self._record_failed = True

    def _without_private(self, value):
        if isinstance(value, str):
            for text in sorted(self._private, key=len, reverse=True):  # longest first: a path before its folder
                value = value.replace(text, "<input>")
            return value
        if isinstance(value, dict):
            return {key: self._without_private(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._without_private(item) for item in value]
        return value

    def notice(self, message: str) -> None:
        self.emit("notice", message=message)

    def _show(self, event: str, text: str) -> None:
        """A progress line overwrites itself on a terminal; every other event gets its own line."""
        interactive = getattr(self.stream, "isatty", lambda: False)()
        if event == "progress" and interactive:
            print("\r" + text, end="", file=self.stream, flush=True)
            self._bar_open = True
            return
        if self._bar_open:
            print(file=self.stream)
            self._bar_open = False
        print(text, file=self.stream, flush=True)
