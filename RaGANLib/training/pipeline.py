"""The input pipeline of training: which prepared slices each step's batch holds, with the latents and the
augmentation seed drawn for it, as a tf.data pipeline spread over the replicas.

All of a batch comes from the named stream "batches" of (seed, step, input pipeline, replica) (RaGANLib/seeds.py):
a resumed run draws the batches it would have drawn. Slices are drawn uniformly, or with `--class-balance` towards
the slices that hold each foreground class (`slice_weights`). The batch's augmentation seed is what the train step
splits for augmenting real and synthetic pairs (RaGANLib/training/augment.py, on the device, so that it stays
differentiable for the synthetic ones). Conditional mode adds the generator's layouts: the batch's labels, moved
(RaGANLib/results/layouts.py).
"""

import numpy as np

from RaGANLib.results.layouts import move_label
from RaGANLib.seeds import stream


def slice_weights(labels, classes: int, balance: float) -> np.ndarray:
    """Each slice's chance to be drawn: `1 - balance` of the draws pick a slice uniformly, `balance` pick one of
    the foreground classes (each equally often) and then a slice that holds it. Every class present in the
    training set then appears in a drawn slice with a chance of at least balance / classes, however few slices
    hold it: a rare lesion or a thin vessel is in the batches, not only in the data."""
    presence = np.zeros((len(labels), classes), dtype=bool)
    for start in range(0, len(labels), 256):  # a block at a time: the label cache may be larger than memory
        block = np.asarray(labels[start : start + 256]).reshape(min(256, len(labels) - start), -1)
        for index in range(1, classes):
            presence[start : start + len(block), index] = (block == index).any(axis=1)
    holding = presence.sum(axis=0)
    present = np.flatnonzero(holding)
    weights = np.full(len(labels), (1 - balance) / len(labels))
    if len(present):
        weights += balance / len(present) * (presence[:, present] / holding[present]).sum(axis=1)
    else:  # nothing but background: uniform
        weights += balance / len(labels)
    return weights / weights.sum()


def batches(spec, data, strategy, latent_size: int, start: int):
    """Batches for steps start.. as (images, labels, latents, augmentation seed[, layouts]), drawn from (seed, step,
    replica); layouts (the conditional generator's labels: the batch's labels, moved) are drawn last."""
    import tensorflow as tf

    images, labels, classes = data.images, data.labels, len(data.classes)
    size, conditional = spec.size, spec.mode == "conditional"
    weights = slice_weights(labels, classes, spec.class_balance) if spec.class_balance else None
    replace = (len(images) if weights is None else np.count_nonzero(weights)) < spec.batch

    def make(context: tf.distribute.InputContext):
        batch = context.get_per_replica_batch_size(spec.batch)
        pipeline = context.input_pipeline_id
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines

        def draw():  # each step takes one element per local replica
            for step in range(start, spec.steps):
                for replica in range(local_replicas):
                    rng = stream(spec.seed, "batches", step, pipeline, replica)
                    chosen = np.sort(rng.choice(len(images), size=batch, replace=replace, p=weights))
                    drawn = (
                        images[chosen].astype(np.float32),
                        labels[chosen],
                        rng.standard_normal((2, batch, latent_size)).astype(np.float32),
                        rng.integers(0, 2**31 - 1, size=2, dtype=np.int64),
                    )
                    yield (*drawn, np.stack([move_label(labels[i], rng) for i in chosen])) if conditional else drawn

        signature = (
            tf.TensorSpec((batch, size, size), tf.float32),
            tf.TensorSpec((batch, size, size), tf.uint8),
            tf.TensorSpec((2, batch, latent_size), tf.float32),
            tf.TensorSpec((2,), tf.int64),
        ) + ((tf.TensorSpec((batch, size, size), tf.uint8),) if conditional else ())
        return tf.data.Dataset.from_generator(draw, output_signature=signature).prefetch(2)

    return iter(strategy.distribute_datasets_from_function(make))


def real_pairs(images, labels, classes: int):
    """A batch's real slices as the discriminator sees pairs: [batch, size, size, 1 + classes], labels one-hot."""
    import tensorflow as tf

    return tf.concat([images[..., None], tf.one_hot(tf.cast(labels, tf.int32), classes)], axis=-1)
