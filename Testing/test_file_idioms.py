"""The shared idioms every writer and reader uses, without training: a folder written whole or not at all
(outputs.staged / outputs.replace), and seeds derived by name (RaGANLib/seeds.py) drawing what they drew before."""

import numpy as np
import pytest

from RaGANLib.results import outputs
from RaGANLib.seeds import STREAMS, seed_of, stream


def folder_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failing_staged_write_leaves_nothing_and_the_earlier_folder_as_it_was(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "model.json").write_text('{"earlier": true}')
    before = folder_bytes(target)
    with pytest.raises(RuntimeError, match="disk gone"):
        with outputs.staged(target, "new") as staging:
            (staging / "model.json").write_text('{"half": ')
            raise RuntimeError("disk gone")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no staging folder left beside it"
    assert folder_bytes(target) == before


def test_a_staged_folder_replaces_the_earlier_one_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old-only.bin").write_bytes(b"earlier")
    with outputs.staged(target, "new") as staging:
        (staging / "model.json").write_text("{}")
        outputs.replace(staging, target)
    assert folder_bytes(target) == {"model.json": b"{}"}, "nothing of the earlier folder, no marker"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "the earlier folder and the staging are gone"


def test_named_seed_streams_draw_what_the_numbered_streams_drew():
    """Checkpoints, previews and generated pairs of existing runs depend on these exact draws."""
    legacy = {
        ("layouts",): [11, 1],
        ("scoring",): [11, 3],
        ("phantom vessels",): [11, 3],
        ("empty slices", 4): [11, 4],
        ("batches", 7, 0, 1): [11, 7, 0, 1],
        ("unet batches", 9): [11, 9],
    }
    for (name, *indices), entropy in legacy.items():
        drawn = stream(np.int64(11), name, *indices).random(4)
        assert np.array_equal(drawn, np.random.default_rng(entropy).random(4)), name


def test_an_integer_seed_is_drawn_from_its_named_stream():
    """The preview's seed (was seed + 7919): the same for a seed every time, a seed of its own, and apart from what
    the other streams of that seed draw."""
    preview = seed_of(11, "preview")
    assert preview == seed_of(np.int64(11), "preview") and 0 <= preview < 2**31
    assert preview not in (11, 11 + 7919) and seed_of(12, "preview") != preview
    others = {name: int(stream(11, name).integers(2**31)) for name in STREAMS if name != "preview"}
    assert preview not in others.values(), others
    assert preview not in [int(np.random.default_rng(entropy).integers(2**31)) for entropy in (11, [11, 0], [11, 1])]
