"""Checkpoints of a run: the whole training state of one step in <run>/checkpoints/, written so that a killed or
damaged one never stops a resume.

Each checkpoint is one .npz of named variable groups ("generator/0000", ..., see GanTrainer.groups), extra arrays
(the best model so far, RaGANLib/training/best_model.py), its `step` and a SHA-256 over all of them. It is written
atomically and never from weights that are no longer finite (Diverged, naming the last good checkpoint). Loading takes
the newest checkpoint that reads and checks; one that does not is set aside as `<name>.damaged` and the next older one
is tried.
"""

import contextlib
import hashlib
import io
from pathlib import Path

import numpy as np

from RaGANLib.errors import Diverged
from RaGANLib.events import Reporter
from RaGANLib.training.runfolder import RunFolder, write_bytes_atomic


def checkpoint_digest(arrays: dict) -> str:
    """SHA-256 over the names, types, shapes and bytes of a checkpoint's arrays, in name order."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save(run: RunFolder, step: int, groups: dict, extra: dict, keep: int) -> Path:
    """Write the variable `groups` and `extra` arrays of `step` with their SHA-256, then keep the newest `keep`
    checkpoints; Diverged (and nothing written) when any of them is not finite."""
    arrays = {"step": np.array(step, dtype=np.int64)}
    for group, variables in groups.items():
        for index, variable in enumerate(variables):
            arrays[f"{group}/{index:04d}"] = np.asarray(variable.numpy())
    arrays |= extra
    broken = sorted({key.split("/")[0] for key, a in arrays.items() if not np.all(np.isfinite(a))})
    if broken:
        raise Diverged(
            f"training diverged at step {step}: the {' and '.join(broken)} weights are no longer finite numbers; "
            f"nothing from this step on was saved. {last_good(run)}"
        )
    arrays["sha256"] = np.array(checkpoint_digest(arrays))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = run.checkpoint_path(step)
    write_bytes_atomic(path, buffer.getvalue())
    run.prune_checkpoints(keep)
    return path


def last_good(run: RunFolder) -> str:
    """What a diverged run leaves, and what to do about it."""
    found = run.list_checkpoints()
    kept = f"The newest checkpoint, '{found[0][1].name}', is kept" if found else "No checkpoint was written yet"
    return f"{kept}; the learning rate (--lr) is probably too high: start a new run with a smaller one"


def check_losses(losses: dict, step: int, run: RunFolder) -> None:
    """Stop (Diverged) when a loss is NaN or infinite: what follows would train and save garbage."""
    broken = {name: float(value) for name, value in losses.items() if not np.isfinite(float(value))}
    if broken:
        described = ", ".join(f"{name} is {value}" for name, value in broken.items())
        raise Diverged(
            f"training diverged at step {step}: {described}; nothing from this step on was saved. " + last_good(run)
        )


def check_groups(arrays: dict, groups: dict) -> None:
    """ValueError unless `arrays` hold exactly the variables of `groups`, each with its shape."""
    for group, variables in groups.items():
        for index, variable in enumerate(variables):
            if arrays[f"{group}/{index:04d}"].shape != tuple(variable.shape):
                raise ValueError(f"{group} variable {index} has another shape")
        if f"{group}/{len(variables):04d}" in arrays:
            raise ValueError(f"{group} has more variables than this model")


def assign_groups(arrays: dict, groups: dict) -> None:
    for group, variables in groups.items():
        for index, variable in enumerate(variables):
            variable.assign(arrays[f"{group}/{index:04d}"])


def newest_usable(run: RunFolder, reporter: Reporter, check, set_aside: bool = True):
    """(step, arrays, check's result) of the newest checkpoint that reads, matches its SHA-256 and its step, and that
    `check(arrays, name)` accepts (it raises otherwise); (0, None, None) when none is usable. Any failure to read or
    check one (truncated, empty, overwritten, bit rot) falls back to the next older, which is renamed aside if
    `set_aside` (not by the workers of several hosts that do not own the run folder)."""
    for step, path in run.list_checkpoints():
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            if "sha256" not in arrays:  # written by RaGAN 0.1, before checkpoints carried one
                reporter.notice(f"checkpoint '{path.name}' has no checksum (an earlier RaGAN wrote it)")
            elif str(arrays.pop("sha256")) != checkpoint_digest(arrays):
                raise ValueError("its contents do not match its SHA-256: damaged on disk")
            if int(arrays["step"]) != step:
                raise ValueError(f"it holds step {int(arrays['step'])}")
            checked = check(arrays, path.name)
        except Exception as error:  # zip, npy and checksum failures have many types; all mean "do not use"
            aside = path.with_name(path.name + ".damaged")  # kept for a look, but no longer counted or tried
            with contextlib.suppress(OSError):
                if set_aside:
                    path.replace(aside)
            reporter.notice(
                f"checkpoint '{path.name}' cannot be used ({type(error).__name__}: {error}); kept as "
                f"'{aside.name}'; trying an older one"
            )
            continue
        return step, arrays, checked
    return 0, None, None
