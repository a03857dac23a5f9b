"""Errors a person can act on. Each maps to an `error` event kind and a process exit code."""

import os
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
