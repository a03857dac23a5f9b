"""Label agreement of synthetic pairs: does each synthetic image show what its label says? Keep those that do.

A segmentation network trained on the real training slices (RaGANLib.quality.downstream.train_unet) segments every
synthetic image, and each pair is scored by how well that segmentation agrees with the pair's label. A pair whose
image does not show its label (a faint vessel, a lesion without contrast) teaches a network trained on it to call
visible tissue background or invisible tissue lesion; keeping only the best-agreeing share leaves such pairs out.
"""

import numpy as np

from RaGANLib.quality import downstream
from RaGANLib.quality.slices import SliceSet


def pair_dice(network, pairs: SliceSet, classes: int) -> np.ndarray:
    """Each pair's Dice per foreground class between the network's segmentation of its image and its label:
    [n, classes - 1], NaN where a class is in neither (nothing to agree or disagree on)."""
    predicted = downstream.predict(network, pairs.images)
    labels = np.asarray(pairs.labels)
    dice = np.full((len(labels), classes - 1), np.nan)
    for c in range(1, classes):
        found, said = predicted == c, labels == c
        total = found.sum(axis=(1, 2)) + said.sum(axis=(1, 2))
        overlap = np.logical_and(found, said).sum(axis=(1, 2))
        dice[total > 0, c - 1] = 2 * overlap[total > 0] / total[total > 0]
    return dice


def agreement_scores(dice: np.ndarray) -> np.ndarray:
    """Each pair's score from its pair_dice row: the mean over the classes in its label or in the segmentation.
    Every class counts alike, so a 2-pixel vessel the image does not show costs as much as a missing organ (Dice
    over all foreground pixels pooled would let the organ's thousand pixels drown the vessel's twenty); a class the
    network finds but the label lacks counts 0 (the image shows something its label does not say). A slice with no
    foreground class in either scores 1."""
    present = ~np.isnan(dice)
    counted = present.sum(axis=1)
    return np.where(counted > 0, np.nansum(dice, axis=1) / np.maximum(counted, 1), 1.0)


def best_agreeing(scores: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the `keep` best-scoring pairs, in their original order (of equal scores, the earlier pair)."""
    return np.sort(np.argsort(-scores, kind="stable")[:keep])


def subset(pairs: SliceSet, chosen: np.ndarray) -> SliceSet:
    """The chosen slices of a set, with their case numbers."""
    return SliceSet(pairs.images[chosen], pairs.labels[chosen], pairs.cases[chosen])
