"""Differentiable augmentation of image + label pairs, applied to real and synthetic pairs before the discriminator.

With tens to hundreds of slices the discriminator memorises the training set; showing it augmented pairs (and the
generator's output through the same differentiable operations) keeps it honest without teaching the generator the
augmentations. Geometric operations move image and label channels together, so they stay aligned; intensity
operations touch the image channel only. Each operation is applied to a sample with probability `p`. No flips: left
and right differ in anatomy.
"""

import math

import tensorflow as tf


def _random_affine(batch, size: int, p: float, seeds: tf.Tensor) -> tf.Tensor:
    """Per-sample projective transforms (output -> input pixel mapping): shift, small rotation and zoom."""

    def draw(k, low, high, neutral):
        keep = tf.cast(tf.random.stateless_uniform([batch], seeds[2 * k]) < p, tf.float32)
        values = tf.random.stateless_uniform([batch], seeds[2 * k + 1], low, high)
        return keep * values + (1 - keep) * neutral

    shift_x = draw(0, -0.125, 0.125, 0.0) * size
    shift_y = draw(1, -0.125, 0.125, 0.0) * size
    angle = draw(2, -math.pi / 18, math.pi / 18, 0.0)  # up to 10 degrees
    zoom = tf.exp(draw(3, -0.1, 0.1, 0.0))
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    centre = (size - 1) / 2
    # Rotate and zoom about the centre, then shift.
    offset_x = centre - cos * centre + sin * centre + shift_x
    offset_y = centre - sin * centre - cos * centre + shift_y
    zeros = tf.zeros([batch])
    return tf.stack([cos, -sin, offset_x, sin, cos, offset_y, zeros, zeros], axis=1)


def augment_pairs(pairs: tf.Tensor, p: float, seed: tf.Tensor) -> tf.Tensor:
    """Augment a batch of [batch, size, size, 1 + classes] pairs (image channel first); `seed` is a stateless seed
    (shape [2]), so the same seed gives the same augmentation."""
    if p <= 0:
        return pairs
    batch, size = tf.shape(pairs)[0], pairs.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, num=11)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=pairs,
        transforms=_random_affine(batch, size, p, seeds),
        output_shape=tf.shape(pairs)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    image, label = moved[..., :1], moved[..., 1:]
    use = tf.cast(tf.random.stateless_uniform([batch, 1, 1, 1], seeds[8]) < p, image.dtype)
    brightness = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[9], -0.1, 0.1, dtype=image.dtype) * use
    contrast = tf.exp(tf.random.stateless_uniform([batch, 1, 1, 1], seeds[10], -0.2, 0.2, dtype=image.dtype) * use)
    mean = tf.reduce_mean(image, axis=[1, 2, 3], keepdims=True)
    image = (image - mean) * contrast + mean + brightness
    return tf.concat([image, label], axis=-1)
