"""Errors a person can act on. Each maps to an `error` event kind and a process exit code."""

import json
import os
import shutil
from pathlib import Path


class RaGANError(Exception):
    """A failure with a message for people and a kind for programs."""

    kind = "internal"
    exit_code = 1


class BadInput(RaGANError):
    """The input files, spec or run folder cannot be used; the message names the file and the problem."""

    kind = "bad_input"
    exit_code = 2


class OutOfMemory(RaGANError):
    """The device ran out of memory; a smaller batch or size may fit."""

    kind = "out_of_memory"
    exit_code = 3


class DiskFull(RaGANError):
    """A file could not be written for want of space; what was written before stays usable."""

    kind = "disk_full"

    @classmethod
    def writing(cls, path: Path, needed: int | None = None) -> "DiskFull":
        return cls(f"no space left on the device to write '{path}'{describe_space(Path(path).parent, needed)}")


class Diverged(RaGANError):
    """Training produced non-finite losses or weights; nothing from that point on was saved."""

    kind = "diverged"


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk that holds `folder` (or its nearest existing parent); None when it cannot be read."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def describe_space(folder: Path, needed: int | None = None) -> str:
    """': N MB needed, M MB free' for a folder (or its nearest existing parent)."""
    free = free_bytes(folder)
    if free is None:
        return ""
    wanted = f"{needed / 1e6:.1f} MB needed, " if needed is not None else ""
    return f": {wanted}{free / 1e6:.1f} MB free"


def check_readable(path: Path, role: str) -> None:
    """Refuse a file or folder that is missing or that this user may not read, saying which of the two it is."""
    try:
        os.stat(path)
    except FileNotFoundError:
        raise BadInput(f"{role} '{path}' does not exist") from None
    except PermissionError:
        raise BadInput(
            f"{role} '{path}' cannot be read: permission denied (a folder on its path does not let this user in)"
        ) from None
    except OSError as error:
        raise BadInput(f"{role} '{path}' cannot be read: {error.strerror or error}") from None
    if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
        raise BadInput(f"{role} '{path}' cannot be read: permission denied")


def read_json(path: Path, role: str):
    """The parsed JSON of a file, or BadInput naming the file (missing, unreadable, not JSON); Excel's byte order mark
    is allowed."""
    check_readable(path, role)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise BadInput(f"{role} '{path}' is not valid JSON: {error}") from None
