"""The GAN's losses, as the train step (RaGANLib/training/trainer.py) computes them per pair, before the batch sum.

Scores are the discriminator's raw outputs (logits); high means "real":
    discriminator  softplus(fake score) + softplus(-real score)   lower when real pairs score high, synthetic low
    generator      softplus(-fake score)                          lower when synthetic pairs score high
    R1             |d score / d real pair|^2                      the discriminator's slope at real pairs: penalised,
                   it keeps the discriminator from sharpening without bound around the few real slices. Computed
                   every R1_INTERVAL steps only (lazy R1) and weighted up by as much to match.

The conditional mode adds a term to the generator's loss (`class_intensity`, weight 1 by default since spec
version 4): how far each class's mean and spread of intensity in the synthetic batch are from the real batch's
(class_intensity_gap).
"""

import tensorflow as tf

R1_INTERVAL = 4  # lazy R1: every few steps, scaled up to match


def discriminator_loss(real_score: tf.Tensor, fake_score: tf.Tensor) -> tf.Tensor:
    """The non-saturating logistic loss of a pair of real and synthetic scores ([batch, 1] each) -> [batch]."""
    return tf.nn.softplus(fake_score[:, 0]) + tf.nn.softplus(-real_score[:, 0])


def generator_loss(fake_score: tf.Tensor) -> tf.Tensor:
    """The non-saturating generator loss of synthetic scores [batch, 1] -> [batch]."""
    return tf.nn.softplus(-fake_score[:, 0])


def scores_and_r1(discriminator, real: tf.Tensor, with_r1) -> tuple[tf.Tensor, tf.Tensor]:
    """The discriminator's scores of the `real` pairs and each pair's R1 penalty ([batch]; zeros unless `with_r1`).
    `with_r1` may be a boolean tensor: the compiled train step holds both cases in one graph (one trace, not two)."""
    with tf.GradientTape() as tape:
        tape.watch(real)
        score = discriminator(real, training=True)
        total = tf.reduce_sum(score)

    def penalty():
        return tf.reduce_sum(tf.square(tape.gradient(total, real)), axis=[1, 2, 3])

    return score, tf.cond(tf.convert_to_tensor(with_r1), penalty, lambda: tf.zeros([tf.shape(real)[0]]))


def with_r1_penalty(adversarial: tf.Tensor, r1: tf.Tensor, gamma: float) -> tf.Tensor:
    """The discriminator's loss per pair: adversarial plus R1 weighted by gamma / 2, times R1_INTERVAL (lazy R1)."""
    return adversarial + gamma / 2 * R1_INTERVAL * r1


def class_intensity_gap(fake, images, labels, classes: int):
    """How far each class's intensity in a synthetic batch is from the real batch's: the sum over classes present in
    both of |mean difference| + |standard deviation difference|. `fake` holds images and one-hot labels
    ([batch, size, size, 1 + classes]); `images` and `labels` are the real batch ([batch, size, size], class indices).
    It asks for organs as much brighter or darker than the body as in the real slices, and as noisy, which the
    discriminator's single realness score teaches slowly from 5 cases; batch statistics leave single slices free."""

    def moments(image, one_hot):
        count = tf.reduce_sum(one_hot, axis=[0, 1, 2])
        mean = tf.reduce_sum(image * one_hot, axis=[0, 1, 2]) / tf.maximum(count, 1.0)
        square = tf.reduce_sum(tf.square(image) * one_hot, axis=[0, 1, 2]) / tf.maximum(count, 1.0)
        return mean, tf.sqrt(tf.maximum(square - tf.square(mean), 0.0) + 1e-6), count > 0

    real_one_hot = tf.one_hot(tf.cast(labels, tf.int32), classes)
    fake_mean, fake_sd, fake_has = moments(tf.cast(fake[..., :1], "float32"), tf.cast(fake[..., 1:], "float32"))
    real_mean, real_sd, real_has = moments(images[..., None], real_one_hot)
    both = tf.cast(fake_has & real_has, "float32")
    return tf.reduce_sum(both * (tf.abs(fake_mean - real_mean) + tf.abs(fake_sd - real_sd)))
