"""Where RaGAN may write: output folders it made itself, proven by a marker file, and staging folders beside them.

Every command that writes (train: the run folder, generate, evaluate: the report folder, demo) writes only into a
folder that is new, empty, or marked by RaGAN as its own output of the same kind: `.ragan.json` holding
{"kind": "run" | "generated" | "report" | "demo", "ragan": version}. Anything else is refused (exit 2) with a message
that names the folder and some of what it holds. Inside its own folder RaGAN replaces only the entries it names.

Results are first written to a staging folder beside the output, `.<name>.partial-<pid>` (the model export uses
`.<name>.new-<pid>` and `.<name>.old-<pid>`), marked as well; a command that fails removes its own, and the next one
removes those that a killed command on this host left behind. A folder without RaGAN's marker is never removed.
Every writer does this through one idiom:

    with staged(out) as staging:       # removed again if the block fails
        ...write into staging...
        publish(staging, out, "generated", names)      # or replace(staging, folder): the folder as a whole
"""

import contextlib
import os
import re
import shutil
import socket
from pathlib import Path

from RaGANLib import __version__
from RaGANLib.errors import BadInput, read_json
from RaGANLib.training.runfolder import write_json_atomic

MARKER = ".ragan.json"
KINDS = {
    "run": "run folder",
    "generated": "folder of generated pairs",
    "report": "report folder",
    "demo": "demo folder",
}
SHOWN_ENTRIES = 5


def kind_of(folder: Path) -> str | None:
    """The kind of RaGAN output `folder` is, from its marker; None when it has no readable marker."""
    marker = _marker(folder)
    return marker.get("kind") if marker else None


def _marker(folder: Path) -> dict | None:
    """The marker of `folder`, None when it has none, or one that cannot be read or is not a JSON object."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        marker = read_json(path, "RaGAN's marker")
    except BadInput:
        return None
    return marker if isinstance(marker, dict) else None


def mark(folder: Path, kind: str, **extra) -> None:
    write_json_atomic(Path(folder) / MARKER, {"kind": kind, "ragan": __version__, **extra})


def _entries(folder: Path) -> list[str]:
    try:
        return sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except PermissionError:
        raise BadInput(f"output folder '{folder}' cannot be read: permission denied") from None
    except OSError as error:
        raise BadInput(f"output folder '{folder}' cannot be read: {error.strerror or error}") from None


def describe(entries: list[str]) -> str:
    shown = ", ".join(f"'{e}'" for e in entries[:SHOWN_ENTRIES])
    more = len(entries) - SHOWN_ENTRIES
    return shown + (f" and {more} more" if more > 0 else "")


def check(folder: Path, kind: str, may_hold: tuple[str, ...] = ()) -> bool:
    """Refuse unless RaGAN may write its `kind` output into `folder`; True when the folder is already marked as one.

    `may_hold`: entries a new output folder may already contain (a run folder: the spec.json it is started with).
    """
    try:
        return _check(Path(folder), kind, may_hold)
    except PermissionError:
        raise BadInput(f"output folder '{folder}' cannot be reached: permission denied") from None


def _check(folder: Path, kind: str, may_hold: tuple[str, ...]) -> bool:
    if not folder.name:
        raise BadInput(f"'{folder}' cannot be an output folder; name a folder inside it")
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"output '{folder}' is a file, not a folder; name a new folder")
    if not folder.exists():
        existing = next((p for p in folder.parents if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise BadInput(f"output '{folder}' cannot be made: '{existing}' is a file")
        return False
    found = kind_of(folder)
    if found == kind or (found is None and kind == "run" and _unmarked_run_folder(folder)):
        return True
    if found is not None:
        raise BadInput(
            f"'{folder}' is a RaGAN {KINDS.get(found, found)}, not a {KINDS[kind]}; choose a new or empty folder"
        )
    others = [e for e in _entries(folder) if e.rstrip("/") not in may_hold]
    if others:
        raise BadInput(
            f"'{folder}' is not empty and is not an earlier {KINDS[kind]} made by RaGAN (it holds {describe(others)}); "
            "RaGAN writes "
            f"only into a new or empty folder or one it made (marked by {MARKER}): choose a new or empty folder"
        )
    return False


# What a run folder of RaGAN 0.1 (before the marker) holds; the Slicer module adds `cases/`.
UNMARKED_RUN_ENTRIES = {
    "spec.json",
    "lock",
    "STOP",
    "cache",
    "checkpoints",
    "tensorboard",
    "previews",
    "model",
    "cases",
}
UNMARKED_RUN_ENTRIES |= {"events.jsonl", "train.log"}


def _unmarked_run_folder(folder: Path) -> bool:
    """A run folder that an earlier RaGAN made before it wrote markers: its spec.json, its events of a run, a
    checkpoints folder, and nothing but what such a run folder holds. It is marked when claimed."""
    names = {e.rstrip("/") for e in _entries(folder)}
    required = {"spec.json", "events.jsonl", "checkpoints"}
    return required <= names and names <= UNMARKED_RUN_ENTRIES and (folder / "checkpoints").is_dir()


def claim(folder: Path, kind: str, may_hold: tuple[str, ...] = ()) -> Path:
    """`folder` as RaGAN's `kind` output folder: checked (see `check`), made if new, and marked."""
    folder = Path(folder)
    if not check(folder, kind, may_hold) or kind_of(folder) is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            mark(folder, kind)
        except OSError as error:
            raise BadInput(f"output folder '{folder}' cannot be written: {error.strerror or error}") from None
    return folder


def check_contents(folder: Path, names: tuple[str, ...]) -> None:
    """Refuse to replace `folder` as a whole unless it holds only entries RaGAN writes there (`names`)."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise BadInput(f"'{folder}' is a file where RaGAN writes a folder; move it away")
    others = [e for e in _entries(folder) if e.rstrip("/") not in names]
    if others:
        raise BadInput(
            f"'{folder}' holds files RaGAN did not write ({describe(others)}), and RaGAN replaces this folder; "
            "move them away"
        )


def _alive_here(marker: dict) -> bool:
    """Whether the process that made a staging folder may still be working on it (always True for another host)."""
    if marker.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(marker.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True
    return True


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove staging folders of `target` that RaGAN made (by name and marker) and whose process is gone."""
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(partial|new|old)-\d+")
    removed = []
    if not target.parent.is_dir():
        return removed
    for path in target.parent.iterdir():
        if not (pattern.fullmatch(path.name) and path.is_dir()):
            continue
        marker = _marker(path)
        if marker and marker.get("kind") == "staging" and not _alive_here(marker):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def new_staging(target: Path, tag: str = "partial") -> Path:
    """A new, marked staging folder beside `target`: `.<name>.<tag>-<pid>`."""
    target = Path(target)
    remove_stale_staging(target)
    staging = target.with_name(f".{target.name}.{tag}-{os.getpid()}")
    if staging.exists():  # our own from earlier in this process
        if kind_of(staging) != "staging":
            raise BadInput(f"'{staging}' is in the way and is not RaGAN's; move it away")
        shutil.rmtree(staging)
    try:
        staging.mkdir(parents=True)
        mark(staging, "staging", host=socket.gethostname(), pid=os.getpid())
    except OSError as error:
        raise BadInput(f"cannot write beside '{target}': {error.strerror or error}") from None
    return staging


@contextlib.contextmanager
def staged(target: Path, tag: str = "partial"):
    """A new staging folder beside `target` (see `new_staging`) for the block to write into and move into place
    (`publish`, `replace`); when the block fails, the staging folder and what is left in it are removed."""
    staging = new_staging(target, tag)
    try:
        yield staging
    except BaseException:
        discard(staging)
        raise


def replace(staging: Path, target: Path) -> None:
    """Make a finished staging folder `target` itself, whole: an earlier `target` is moved aside first and removed
    only once the new one is in place (it is put back when the move fails). Check what `target` holds first
    (`check_contents`)."""
    target, retired = Path(target), None
    try:
        if target.exists():
            retired = new_staging(target, "old")
            os.replace(target, retired / target.name)
        move_into_place(staging, target)
    except BaseException:
        if retired is not None and not target.exists():
            os.replace(retired / target.name, target)  # the earlier folder stays
        raise
    finally:
        if retired is not None:
            discard(retired)


def move_into_place(staging: Path, target: Path) -> None:
    """Make a finished staging folder `target` itself, without the staging marker."""
    (Path(staging) / MARKER).unlink()
    os.replace(staging, target)


def discard(staging: Path) -> None:
    """Remove a staging folder this process made (it carries our marker)."""
    if kind_of(staging) == "staging":
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path, kind: str, names: tuple[str, ...]) -> dict:
    """Move the entries `names` from `staging` into the output folder `out` (claimed as `kind`), replacing only
    those entries; the staging folder, with any replaced entries, is removed. Returns name -> path."""
    claim(out, kind)
    published = {}
    for name in names:
        target, new = out / name, staging / name
        if (target.exists() or target.is_symlink()) and (target.is_dir() or new.is_dir()):
            os.replace(target, staging / f"replaced-{name}")  # removed with the staging folder, which is ours
        os.replace(new, target)
        published[name] = target
    discard(staging)
    return published
