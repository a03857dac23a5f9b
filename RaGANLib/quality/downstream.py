"""The downstream test: does a segmentation network trained on synthetic pairs segment real scans, and better than
without them?

A fixed small 2D U-Net (built here, seeded, fixed step budget, the same for every arm) is trained on one or more
sets of slices and tested on held-out real cases; each batch draws from the sets in the proportions `mix` (equal
parts by default, so a few real cases are not drowned by thousands of synthetic ones). `ragan evaluate`'s arms are
evaluate.DOWNSTREAM_ARMS. Dice is computed per held-out case over its slices, per class, and averaged over the cases
where the class appears in the truth or the prediction. Arms trained with several U-Net seeds are compared by their
means beyond the spread of the seeds (summary, compare, verdict): one seed's Dice moves by several hundredths from
seed to seed.
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
    network = build_unet(size, classes, protocol.width, protocol.depth)  # the seed's starting weights
    trained, step = _training_step(size, classes, protocol)
    trained.set_weights(network.get_weights())
    shares = batch_counts(mix, len(sources), protocol.batch)
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
    network.set_weights(trained.get_weights())
    return network


def batch_counts(mix, sources: int, batch: int) -> np.ndarray:
    """Slices of each source in every batch of `batch`: the proportions `mix` (equal parts when None), rounded so that
    they add up to the batch."""
    mix = np.ones(sources) if mix is None else np.asarray(mix, np.float64)
    return np.diff(np.round(np.concatenate([[0], np.cumsum(mix)]) / mix.sum() * batch).astype(int))


# The last (size, classes, width, depth, lr)'s network and compiled training step, for the next arm: one per process,
# not for concurrent use (train_unet is called one run after another by evaluate and the benchmarks).
_COMPILED = {}


def _training_step(size: int, classes: int, protocol: UNetProtocol):
    """A U-Net of this shape and its compiled training step (Adam, cross-entropy + soft Dice), the optimizer set back
    to its start. Compiling the step takes seconds, longer than a short U-Net run: the arms and seeds of one
    evaluation share it, each starting from its own seed's weights (copied in by the caller) and a fresh optimizer
    state, so every run trains exactly as on a network of its own."""
    import keras
    import tensorflow as tf

    key = (size, classes, protocol.width, protocol.depth, protocol.lr)
    if key not in _COMPILED:
        model = build_unet(size, classes, protocol.width, protocol.depth)
        optimizer = keras.optimizers.Adam(protocol.lr)
        optimizer.build(model.trainable_variables)

        @tf.function
        def step(images, labels):
            truth = tf.one_hot(tf.cast(labels, tf.int32), classes)
            with tf.GradientTape() as tape:
                loss = segmentation_loss(truth, model(images[..., None], training=True))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(gradients, model.trainable_variables)
            return loss

        _COMPILED.clear()
        _COMPILED[key] = model, optimizer, [v.numpy() for v in optimizer.variables], step
    model, optimizer, start, step = _COMPILED[key]
    for variable, value in zip(optimizer.variables, start):
        variable.assign(value)
    return model, step


def segmentation_loss(truth, predicted):
    """Cross-entropy plus (1 - soft Dice over the foreground classes) of class probabilities `predicted` against
    one-hot `truth` ([batch, size, size, classes] both): the U-Net's loss, also the segmenter's in a GAN run with
    --seg-consistency (RaGANLib/training/trainer.py)."""
    import keras
    import tensorflow as tf

    cross_entropy = tf.reduce_mean(keras.losses.categorical_crossentropy(truth, predicted))
    overlap = tf.reduce_sum(truth * predicted, axis=[0, 1, 2])
    total = tf.reduce_sum(truth + predicted, axis=[0, 1, 2])
    return cross_entropy + (1 - tf.reduce_mean(((2 * overlap + 1) / (total + 1))[1:]))


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


def summary(values: list[float]) -> dict:
    """Mean and sample standard deviation (0 for a single run) of a list of Dice figures, NaN-free."""
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return {"mean": float("nan"), "sd": float("nan"), "runs": 0}
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "sd": sd, "runs": len(values)}


def compare(arm: dict, baseline: dict) -> dict:
    """The difference of means of two summaries, its spread (the root-sum-square of the two standard deviations), and
    the verdict it allows: better or worse only beyond the spread."""
    difference = arm["mean"] - baseline["mean"]
    spread = float(np.hypot(arm["sd"], baseline["sd"]))
    if abs(difference) <= spread or np.isnan(difference):
        verdict = "within the spread"
    else:
        verdict = "better" if difference > 0 else "worse"
    return {"difference": difference, "spread": spread, "verdict": verdict}


# What `ragan evaluate --downstream` decides: report key -> (the arm with synthetic pairs, the same arm without them,
# what the synthetic pairs are added to). The second holds the real share fixed; only the other quarter differs.
COMPARISONS = {
    "synthetic_vs_real": ("real+synthetic", "real", "the real cases alone"),
    "synthetic_vs_augmented": ("real+augmented+synthetic", "real+augmented", "augmenting the real cases"),
}


def verdict(arms: dict) -> dict:
    """Whether synthetic pairs add to what they are added to (COMPARISONS), in mean foreground Dice and in each class,
    from the arms' figures as the report keeps them ("dice", "mean_foreground_dice", their "_sd" over the U-Net
    seeds, None with one seed, and "seeds"): better or worse only beyond the spread (compare); with one seed the
    spread is unknown. Each comparison comes with a sentence a researcher reads at a glance."""
    found = {}
    for key, (with_synthetic, without, baseline) in COMPARISONS.items():
        a, b = arms[with_synthetic], arms[without]
        overall = _judge(
            a["mean_foreground_dice"],
            a["mean_foreground_dice_sd"],
            b["mean_foreground_dice"],
            b["mean_foreground_dice_sd"],
        )
        classes = {
            name: _judge(a["dice"][name], a["dice_sd"][name], b["dice"][name], b["dice_sd"][name]) for name in a["dice"]
        }
        per_class = ", ".join(f"{name} {_in_words(judged)}" for name, judged in classes.items())
        figures = f"{with_synthetic} {a['mean_foreground_dice']:.3f} vs {without} {b['mean_foreground_dice']:.3f}"
        found[key] = {
            "with": with_synthetic,
            "without": without,
            "mean_foreground": overall,
            "classes": classes,
            "summary": _sentence(overall, baseline, figures, len(a["seeds"])) + f" Per class: {per_class}.",
        }
    return found


def _judge(mean: float, sd: float | None, baseline_mean: float, baseline_sd: float | None) -> dict:
    """compare() on report figures, rounded as they are: unknown without an sd, unmeasured where a Dice is NaN."""
    if np.isnan(mean) or np.isnan(baseline_mean):
        return {"difference": None, "spread": None, "verdict": "not measured"}
    if sd is None or baseline_sd is None:
        return {"difference": round(mean - baseline_mean, 4), "spread": None, "verdict": "spread unknown"}
    found = compare({"mean": mean, "sd": sd}, {"mean": baseline_mean, "sd": baseline_sd})
    return {**found, "difference": round(found["difference"], 4), "spread": round(found["spread"], 4)}


def _sentence(judged: dict, baseline: str, figures: str, seeds: int) -> str:
    """The verdict on mean foreground Dice in words: what synthetic pairs do beyond `baseline`, and why it is said."""
    verdict = judged["verdict"]
    if verdict == "not measured":
        return f"Synthetic pairs cannot be weighed against {baseline}: {figures}, no class found in the held-out cases."
    if verdict == "spread unknown":
        return (
            f"Fewer than two U-Net seeds measured it, so it is unknown whether synthetic pairs help beyond {baseline}: "
            f"{figures} in mean foreground Dice, rerun with --unet-seeds 3 to know the spread."
        )
    spread = f"the spread {judged['spread']:.3f} over {seeds} U-Net seeds"
    if verdict == "within the spread":
        return f"Synthetic pairs add nothing beyond {baseline}: {figures} in mean foreground Dice, within {spread}."
    said = "help beyond" if verdict == "better" else "do worse than"
    return (
        f"Synthetic pairs {said} {baseline}: {figures} in mean foreground Dice, {verdict} by "
        f"{abs(judged['difference']):.3f}, more than {spread}."
    )


def _in_words(judged: dict) -> str:
    """A class's verdict in a few words: "better by 0.041", "within the spread", "+0.041 (spread unknown)"."""
    if judged["verdict"] in ("better", "worse"):
        return f"{judged['verdict']} by {abs(judged['difference']):.3f}"
    if judged["verdict"] == "spread unknown":
        return f"{judged['difference']:+.3f} (spread unknown)"
    return judged["verdict"]
