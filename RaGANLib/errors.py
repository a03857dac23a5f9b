"""Errors a person can act on. Each maps to an `error` event kind and a process exit code."""


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


def require_readable(path, what: str) -> None:
    """Refuse a file or folder that is missing or that this user may not read, saying which of the two it is
    (SimpleITK says "does not exist" for both). `what` names it in the message, e.g. "image 'a.nrrd'"."""
    import os

    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb"):
                pass
    except FileNotFoundError:
        raise BadInput(f"{what} does not exist") from None
    except PermissionError:
        raise BadInput(f"{what} cannot be read: permission denied (check the file and the folders above it)") from None
    except OSError as error:
        raise BadInput(f"{what} cannot be read: {error.strerror or error}") from None
