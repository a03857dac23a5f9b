"""The downstream test: does a segmentation network trained on synthetic pairs segment real scans?

A fixed small 2D U-Net (built here, fixed seed, fixed step budget, same for every arm) is trained on one set of
slices and tested on held-out real cases. Arms: real slices only, synthetic only, and real + synthetic (each batch
half real, half synthetic by default, so a few real cases are not drowned by thousands of synthetic ones; `mix` sets
other shares, e.g. a quarter synthetic). Dice is computed per
held-out case over its slices, per class, and averaged over the cases where the class appears in the truth or the
prediction.
"""

import dataclasses

import numpy as np

from RaGANLib.quality.slices import SliceSet
from RaGANLib.seeds import stream


@dataclasses.dataclass(frozen=True)
class UNetProtocol:
    """Everything that fixes a downstream arm: the same values for every arm of a comparison."""

    steps: int = 1500
    batch: int = 16
    width: int = 16  # channels at full resolution, doubling per level
    depth: int = 4  # downsamplings
    lr: float = 1e-3
    seed: int = 0


def build_unet(size: int, classes: int, width: int, depth: int):
    """Image [size, size, 1] -> class probabilities [size, size, classes]; two 3x3 convolutions per level."""
    import keras
    from keras import layers

    def block(x, filters, name):
        for k in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{k}")(x)
            x = layers.GroupNormalization(groups=4, name=f"{name}_norm{k}")(x)
            x = layers.ReLU()(x)
        return x

    image = keras.Input((size, size, 1), name="image")
    x, skips = image, []
    for level in range(depth):
        x = block(x, width * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = block(x, width * 2**depth, "bottom")
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(width * 2**level, 2, strides=2, name=f"up{level}")(x)
        x = block(layers.Concatenate()([x, skips[level]]), width * 2**level, f"up{level}")
    probabilities = layers.Conv2D(classes, 1, activation="softmax", name="classes")(x)
    return keras.Model(image, probabilities, name="unet")


def train_unet(sources: list[SliceSet], classes: int, protocol: UNetProtocol, progress=None, mix=None):
    """Train the U-Net on the sources (each batch drawn from each in the proportions `mix`, equal parts by default);
    returns the model. `progress(step, total)` is called every 50 steps."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(protocol.seed)
    size = sources[0].images.shape[1]
    model = build_unet(size, classes, protocol.width, protocol.depth)
    optimizer = keras.optimizers.Adam(protocol.lr)

    @tf.function
    def step(images, labels):
        truth = tf.one_hot(tf.cast(labels, tf.int32), classes)
        with tf.GradientTape() as tape:
            predicted = model(images[..., None], training=True)
            cross_entropy = tf.reduce_mean(keras.losses.categorical_crossentropy(truth, predicted))
            overlap = tf.reduce_sum(truth * predicted, axis=[0, 1, 2])
            total = tf.reduce_sum(truth + predicted, axis=[0, 1, 2])
            soft_dice = tf.reduce_mean(((2 * overlap + 1) / (total + 1))[1:])
            loss = cross_entropy + (1 - soft_dice)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    mix = np.ones(len(sources)) if mix is None else np.asarray(mix, np.float64)
    shares = np.diff(np.round(np.concatenate([[0], np.cumsum(mix)]) / mix.sum() * protocol.batch).astype(int))
    for number in range(protocol.steps):
        rng = stream(protocol.seed, "unet batches", number)
        chosen = [rng.integers(0, len(s.images), size=k) for s, k in zip(sources, shares)]
        images = np.concatenate([np.asarray(s.images[np.sort(c)], np.float32) for s, c in zip(sources, chosen)])
        labels = np.concatenate([np.asarray(s.labels[np.sort(c)]) for s, c in zip(sources, chosen)])
        flip = rng.random(len(images)) < 0.5  # left-right flips: same for every arm, part of the protocol
        images[flip], labels[flip] = images[flip, :, ::-1], labels[flip, :, ::-1]
        step(tf.constant(images), tf.constant(labels))
        if progress and ((number + 1) % 50 == 0 or number + 1 == protocol.steps):
            progress(number + 1, protocol.steps)
    return model


def predict(model, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Class index maps of [n, size, size] images."""
    parts = []
    for start in range(0, len(images), batch):
        chunk = np.asarray(images[start : start + batch], np.float32)[..., None]
        parts.append(np.argmax(np.asarray(model(chunk, training=False)), axis=-1).astype(np.uint8))
    return np.concatenate(parts)


def dice_by_case(predicted: np.ndarray, truth: np.ndarray, cases: np.ndarray, classes: int) -> dict:
    """Per-class Dice averaged over cases (each case's slices pooled), and the mean over foreground classes.
    A case where a class is absent from both truth and prediction does not count for that class."""
    per_class = {}
    for c in range(1, classes):
        scores = []
        for case in np.unique(cases):
            p, t = predicted[cases == case] == c, truth[cases == case] == c
            denominator = p.sum() + t.sum()
            if denominator:
                scores.append(2 * np.logical_and(p, t).sum() / denominator)
        per_class[c] = float(np.mean(scores)) if scores else float("nan")
    values = [v for v in per_class.values() if not np.isnan(v)]
    return {"per_class": per_class, "mean_foreground": float(np.mean(values)) if values else float("nan")}


def run_arm(
    sources: list[SliceSet],
    test: SliceSet,
    classes: int,
    protocol: UNetProtocol,
    progress=None,
    mix=None,
    agreement: SliceSet | None = None,
) -> dict:
    """Train on `sources` (in the proportions `mix`), test on `test`; Dice figures. With `agreement` (e.g. synthetic
    pairs), the same network also segments its images, scored against its labels, under the key "agreement": does
    each image show what its label says, as well as a held-out real slice shows its label?"""
    return score_network(train_unet(sources, classes, protocol, progress, mix), test, classes, agreement)


def score_network(model, test: SliceSet, classes: int, agreement: SliceSet | None = None) -> dict:
    """A trained U-Net's Dice figures on `test` (and on `agreement`, under that key), as run_arm gives them."""
    result = dice_by_case(predict(model, test.images), np.asarray(test.labels), test.cases, classes)
    if agreement is not None:
        result["agreement"] = dice_by_case(
            predict(model, agreement.images), np.asarray(agreement.labels), agreement.cases, classes
        )
    return result
