"""How quickly the module answers, measured through its Logic on a real MRML scene with the real trainer (not part of
the test suite: the numbers depend on the machine). Run it by name and read what it prints:

    python -m pytest Testing/slicer/benchmark_responsiveness.py -s -p no:cacheprovider

Train: from the press to the panel's first status line (the run folder written and the trainer started; goal under
1 s), to the trainer's first event and to its first progress event (goal under 10 s on the phantom case with 2 CPU
cores, most of it TensorFlow's import). Generate: from the press to the volume and segmentation in the scene.
"""

import sys
import time

from RaGANModuleLib import demo_data, training_cases
from RaGANModuleLib.trainer_job import JobState
from slicer_test_support import module_logic, needs_trainer


def first(job, kind: str | None, timeout_s: float = 300) -> float:
    """Poll as the panel's timer does until an event of `kind` (any kind: None) arrives; returns the time it came."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(kind is None or e.get("event") == kind for e in job.poll()):
            return time.monotonic()
        if job.state.final:
            raise AssertionError(f"the trainer ended before a {kind or 'first'} event: {job.message}")
        time.sleep(0.02)
    raise AssertionError(f"no {kind or 'first'} event within {timeout_s} s")


@needs_trainer
def test_time_to_first_status_progress_and_loaded_result(scene, tmp_path):
    logic = module_logic()
    started = time.monotonic()
    logic.trainerCheck(refresh=True)  # the panel does this when it opens, not when Train is pressed
    check_s = time.monotonic() - started
    cases = [training_cases.TrainingCase(*demo_data.add_phantom_case(scene, seed=0))]
    options = {"size": 64, "steps": 20, "batch": 4, "log_every": 1, "preview_every": 10, "checkpoint_every": 10}

    pressed = time.monotonic()
    job, run = logic.startTraining(scene, cases, options, tmp_path, "cpu")
    status = time.monotonic()  # the panel sets its status line right after startTraining returns
    event = first(job, None)
    progress = first(job, "progress")
    assert job.wait(timeout_s=600) == JobState.DONE, job.message

    pressed_generate = time.monotonic()
    job, _ = logic.startGenerate(run / "model", count=16, seed=0, device="cpu")
    assert job.wait(timeout_s=300) == JobState.DONE, job.message
    logic.loadGenerated(scene, job.finished["outputs"], run / "model", cases[0].image)
    loaded = time.monotonic()

    lines = [
        f"environment check (when the panel opens): {check_s:.2f} s",
        f"Train -> first status line: {status - pressed:.2f} s (goal < 1 s)",
        f"Train -> first trainer event: {event - pressed:.2f} s",
        f"Train -> first progress event: {progress - pressed:.2f} s (goal < 10 s)",
        f"Generate 16 slices -> volume and segmentation in the scene: {loaded - pressed_generate:.2f} s",
    ]
    print("\n" + "\n".join(lines), file=sys.stderr)
