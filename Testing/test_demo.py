"""`ragan demo`, shortened to a few steps: phantom data, training, generation and the preview picture all appear."""

import json

from PIL import Image
from ragan_testing import events_of, ragan, trained_ahead


@trained_ahead
def demo_run(folder, phantom_dataset):
    """`ragan demo` shortened to 4 steps: (its folder, the finished command)."""
    return folder / "demo", ragan("demo", "--out", folder / "demo", "--steps", "4")


def test_demo_runs_the_whole_loop(demo_run):
    demo, result = demo_run
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = [e["event"] for e in events_of(result.stdout)]
    assert kinds.count("finished") == 2  # training, then generation
    assert json.loads((demo / "data" / "dataset.json").read_text())["numTraining"] == 8
    # The conditional mode's triplets (label | synthetic | real, 96 px cells), 4 to a row, under a title line.
    assert Image.open(demo / "preview.png").size == (4 * 3 * 96, 22 + 4 * 96)
    assert json.loads((demo / "run" / "model" / "model.json").read_text())["mode"] == "conditional"
    assert (demo / "synthetic" / "synthetic_image.nrrd").exists()
    assert len(list((demo / "synthetic" / "nnunet" / "labelsTr").iterdir())) == 32


def test_demo_never_wipes_a_folder_that_is_not_an_earlier_demo(tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    result = ragan("demo", "--out", tmp_path, "--steps", "1", timeout=60)
    assert result.returncode == 2 and "not an earlier demo folder" in events_of(result.stdout)[-1]["message"]
    assert keep.read_text() == "mine"
