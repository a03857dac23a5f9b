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
