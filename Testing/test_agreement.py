"""Label-agreement filtering (RaGANLib.quality.agreement): a U-Net really trained on phantom slices scores pairs whose
image shows their label above pairs whose image was swapped for another case's, and the filter drops the swapped ones.
"""

import numpy as np
import pytest

from RaGANLib.data import phantom
from RaGANLib.quality import agreement, downstream
from RaGANLib.quality.slices import SliceSet


def phantom_slices(seeds, depth: int = 8) -> SliceSet:
    """Phantom cases as 64-px slices; a soft-tissue window (-200..400 HU to -1..1) so that organ, lesion and vessel
    stand out enough for a U-Net to learn them in a few dozen steps."""
    images, labels = zip(*(phantom.make_case(seed, (depth, 64, 64)) for seed in seeds))
    images = np.clip((np.concatenate(images).astype(np.float32) - 100) / 300, -1, 1)
    return SliceSet(images, np.concatenate(labels), np.repeat(np.arange(len(seeds)), depth))


@pytest.fixture(scope="module")
def checker():
    """The checker network: the downstream U-Net trained on real phantom slices only, as the real-alone arm is."""
    protocol = downstream.UNetProtocol(steps=100, width=8, depth=2, lr=3e-3)
    return downstream.train_unet([phantom_slices(range(4))], 4, protocol)


def test_pairs_whose_image_does_not_show_their_label_score_lowest_and_are_dropped(checker):
    pairs = phantom_slices([10, 11])  # cases the checker never saw
    swapped = np.array([1, 4, 6, 9, 12, 14])  # case 10's slices 1, 4, 6 and case 11's slices 1, 4, 6
    images = pairs.images.copy()
    images[swapped] = pairs.images[(swapped + 8) % 16]  # each takes the same slice of the other case: organ,
    mixed = SliceSet(images, pairs.labels, pairs.cases)  # lesion and vessels are elsewhere there
    dice = agreement.pair_dice(checker, mixed, 4)
    scores = agreement.agreement_scores(dice)
    intact = np.setdiff1d(np.arange(16), swapped)
    assert scores[intact].min() > scores[swapped].max(), (scores[intact], scores[swapped])
    assert scores[intact].mean() > 0.5  # the checker learnt something: intact pairs do agree
    kept = agreement.best_agreeing(scores, len(intact))
    assert kept.tolist() == intact.tolist()
    chosen = agreement.subset(mixed, kept)
    assert np.array_equal(chosen.images, images[intact]) and np.array_equal(chosen.labels, pairs.labels[intact])


def test_agreement_score_weights_every_class_alike_and_counts_a_class_the_label_lacks():
    """The score from per-class Dice rows: a missed thin class costs as much as a missed large one; a class found but
    not in the label (Dice 0) counts; classes in neither do not; a slice with none scores 1."""
    dice = np.array(
        [
            [1.0, np.nan, 0.0],  # organ right, vessel missed
            [0.0, np.nan, 1.0],  # organ missed, vessel right
            [1.0, 0.0, 1.0],  # a lesion where the label has none (or missed)
            [np.nan, np.nan, np.nan],  # background only, and so found
        ]
    )
    assert agreement.agreement_scores(dice).tolist() == pytest.approx([0.5, 0.5, 2 / 3, 1.0])
    assert agreement.best_agreeing(np.array([0.5, 0.9, 0.5, 0.7]), 3).tolist() == [0, 1, 3]  # ties: the earlier
