"""The conditional generator's layouts with more of the rare and thin classes (`ragan generate --add-rare N`), on
phantom label slices (64 px, no training): lesions and vessels cut from other slices are pasted only onto the class
that surrounded them, no class appears that the training labels lack, a seed repeats its layouts, the layouts of
before are unchanged without the option, and the rare classes' share of the layouts rises with it. The training
pairs moved by the same moves (augmentation of the real cases) move image and label alike.
"""

import numpy as np
import pytest

from RaGANLib.data import phantom
from RaGANLib.results import layouts

ORGAN, LESION, VESSEL = 1, 2, 3


@pytest.fixture(scope="module")
def training_labels() -> np.ndarray:
    """The label slices of three phantom cases at 64 px, as a conditional model keeps them."""
    return np.concatenate([phantom.make_case(seed, (12, 64, 64))[1] for seed in range(3)])


def shares(found: np.ndarray) -> np.ndarray:
    return np.bincount(found.ravel(), minlength=4) / found.size


def test_lesions_are_rare_vessels_thin_and_the_organ_neither(training_labels):
    assert layouts.rare_and_thin_classes(training_labels, 4) == [LESION, VESSEL]
    hosts = [c.host for c in layouts.components_of(training_labels, [LESION])]
    assert hosts and np.mean(np.equal(hosts, ORGAN)) > 0.9  # a phantom lesion lies inside the organ


def test_a_pasted_component_lies_wholly_on_pixels_of_its_host_class(training_labels):
    components = layouts.components_of(training_labels, [LESION, VESSEL])
    rng = np.random.default_rng(5)
    pasted = {LESION: 0, VESSEL: 0}
    for _ in range(150):
        component = components[rng.integers(len(components))]
        before = layouts.move_label(training_labels[rng.integers(len(training_labels))], rng)
        after = before.copy()
        if not layouts.paste_component(after, component, rng):
            assert np.array_equal(after, before), "a component that does not fit leaves the layout as it was"
            continue
        changed = after != before
        assert np.all(after[changed] == component.cls) and np.all(before[changed] == component.host)
        assert abs(int(changed.sum()) - len(component.rows)) <= 0.3 * len(component.rows) + 2  # turned, not torn
        pasted[component.cls] += 1
    assert min(pasted.values()) >= 5, pasted


def test_a_component_is_skipped_where_its_host_class_is_missing():
    lesion_in_organ = np.zeros((64, 64), np.uint8)
    lesion_in_organ[20:40, 20:40] = ORGAN
    lesion_in_organ[27:33, 27:33] = LESION
    (component,) = layouts.components_of(lesion_in_organ[None], [LESION])
    assert component.host == ORGAN and len(component.rows) == 36
    no_organ = np.zeros((64, 64), np.uint8)
    no_organ[5:60, 5:60] = VESSEL  # everything near the lesion's place is another class
    assert not layouts.paste_component(no_organ, component, np.random.default_rng(0))
    assert set(np.unique(no_organ)) == {0, VESSEL}


def test_layouts_hold_no_class_the_training_labels_lack(training_labels):
    without_organ = np.where(training_labels == ORGAN, 0, training_labels)  # a model that never saw class 1
    found = layouts.moved_layouts(without_organ, np.random.default_rng(2), extra=3)
    classes = set(np.unique(np.stack([next(found) for _ in range(40)])).tolist())
    assert classes <= {0, LESION, VESSEL} and LESION in classes


def test_the_same_seed_gives_the_same_layouts_and_without_the_option_those_of_before(training_labels):
    def first(seed: int, extra: int, count: int = 20) -> np.ndarray:
        found = layouts.moved_layouts(training_labels, np.random.default_rng(seed), extra)
        return np.stack([next(found) for _ in range(count)])

    assert np.array_equal(first(7, 2), first(7, 2))
    assert not np.array_equal(first(7, 2), first(8, 2))
    rng = np.random.default_rng(7)  # what moved_layouts drew before --add-rare existed: a slice, then its move
    before = [layouts.move_label(training_labels[rng.integers(len(training_labels))], rng) for _ in range(20)]
    assert np.array_equal(first(7, 0), np.stack(before))


def test_the_share_of_the_rare_and_thin_classes_in_200_layouts_rises(training_labels):
    found = {}
    for extra in (0, 1):
        drawn = layouts.moved_layouts(training_labels, np.random.default_rng(3), extra)
        found[extra] = np.stack([next(drawn) for _ in range(200)])
    plain, more = shares(found[0]), shares(found[1])
    assert more[LESION] > 1.2 * plain[LESION] and more[VESSEL] > 1.1 * plain[VESSEL], (plain, more)
    assert (found[1] == LESION).any(axis=(1, 2)).mean() > (found[0] == LESION).any(axis=(1, 2)).mean()


def test_the_training_images_move_like_their_layouts(training_labels):
    """The memorisation check's floor for a conditional model: each layout's source image, moved by the layout's own
    move (the same draws), so a moved image's body lies where its layout's foreground lies."""
    images = np.where(training_labels > 0, 1.0, -1.0).astype(np.float32)  # foreground bright on air
    drawn = layouts.moved_layouts(training_labels, np.random.default_rng(4))
    foreground = np.stack([next(drawn) for _ in range(30)]) > 0

    def overlap(seed: int) -> float:
        inside = layouts.moved_pairs(training_labels, images, 30, np.random.default_rng(seed))[0] > 0
        return (inside & foreground).sum() / (inside | foreground).sum()

    moved = layouts.moved_pairs(training_labels, images, 30, np.random.default_rng(4))[0]
    assert moved.shape == foreground.shape and moved.dtype == np.float32
    assert -1 <= moved.min() and moved.max() <= 1 and not np.isin(moved, [-1, 1]).all()  # interpolated at the edges
    assert overlap(4) > 0.9 and overlap(5) < 0.6  # the layouts' own moves, not just any


def test_augmented_real_pairs_move_image_and_label_alike(training_labels):
    """`ragan evaluate --downstream`'s augmented real pairs: a training image that is its label scaled to [-1, 1],
    moved by moved_pairs, still reads as its moved label wherever the label does not change within a pixel (linear
    interpolation blurs only the outline); a moved label paired with another pair's moved image does not."""
    images = (training_labels / 3 * 2 - 1).astype(np.float32)
    moved_images, moved_labels = layouts.moved_pairs(training_labels, images, 30, np.random.default_rng(4))
    assert moved_images.shape == moved_labels.shape == (30, 64, 64) and moved_images.dtype == np.float32
    assert moved_labels.dtype == training_labels.dtype
    read = np.rint((moved_images + 1) / 2 * 3).astype(moved_labels.dtype)  # the class each image value stands for

    def off_the_outline(labels: np.ndarray) -> int:
        padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)), mode="edge")
        outline = np.zeros(labels.shape, bool)
        for dr in range(3):
            for dc in range(3):
                outline |= padded[:, dr : dr + 64, dc : dc + 64] != labels
        return int(((read != labels) & ~outline).sum())

    assert off_the_outline(moved_labels) == 0 and 0 < (read != moved_labels).mean() < 0.05
    assert off_the_outline(np.roll(moved_labels, 1, axis=0)) > 1000
    drawn = layouts.moved_layouts(training_labels, np.random.default_rng(4))
    assert np.array_equal(moved_labels, np.stack([next(drawn) for _ in range(30)]))  # the layouts' own moves
    assert not any(np.array_equal(moved, label) for moved in moved_labels for label in training_labels)
