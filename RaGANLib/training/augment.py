"""Differentiable augmentation of image + label pairs, applied to real and synthetic pairs before the discriminator,
and the adaptive rule (ADA) that sets how often it is applied.

With tens to hundreds of slices the discriminator memorises the training set; showing it augmented pairs (and the
generator's output through the same differentiable operations) keeps it honest without teaching the generator the
augmentations. Each operation is applied to a sample with probability `p` (a number, or a tensor that a compiled
train step reads from a variable without retracing). No flips: left and right differ in anatomy.

- Geometric operations move image and label channels together: one resampling pass combines a shift, a small
  rotation and zoom, and a small smooth elastic deformation. The label is made one-hot again afterwards
  (straight-through, so the generator still gets gradients): the discriminator never sees a soft label edge that
  real labels lack.
- Cutout erases a square of the image to the lowest intensity (air in CT, black in MR and X-ray) and sets the label
  there to background: a label has to describe what the image shows, and an erased patch shows nothing.
- Intensity operations (gamma, brightness and contrast, noise, blur) touch the image channel only.

Everything is gathers, arithmetic and convolutions, so XLA compiles it (ImageProjectiveTransformV3, used before, has
no XLA kernel), and all randomness comes from a stateless seed: the same seed gives the same augmentation.
"""

import math

import tensorflow as tf

ELASTIC_GRID = 5  # control points per side of the elastic displacement field
ELASTIC_PIXELS = 0.03  # largest elastic displacement, as a fraction of the slice size (about 2 pixels at 64)
CUTOUT_SIDE = 0.25  # side of the cutout square, as a fraction of the slice size

# ADA: the discriminator's overfitting signal is r = mean(sign(D(real pair))) over the last ADA_INTERVAL_IMAGES real
# images: 0 while it cannot tell real from synthetic, 1 when it is sure of every real pair. p rises while r is above
# ADA_TARGET and falls while r is below it, by a step that would take p from 0 to 1 in ADA_SPEED_IMAGES images (625
# steps at batch 16, a third of the default 2000 steps: fast enough for few-case runs, whose discriminator memorises
# within hundreds of steps). p stays at or below ADA_MAX_P: above about 0.8 augmentations leak into the generator's
# output.
ADA_TARGET = 0.6
ADA_INTERVAL_IMAGES = 64
ADA_SPEED_IMAGES = 10_000
ADA_MAX_P = 0.8


def ada_adjust(p, sign_sum, seen):
    """The next (p, sign_sum, seen), where the real pairs' scores of the `seen` images since the last adjustment
    summed their signs to `sign_sum`: once ADA_INTERVAL_IMAGES images are seen, p moves and the sums restart."""
    due = seen >= ADA_INTERVAL_IMAGES
    signal = sign_sum / tf.maximum(seen, 1.0)
    moved = tf.clip_by_value(p + tf.sign(signal - ADA_TARGET) * seen / ADA_SPEED_IMAGES, 0.0, ADA_MAX_P)
    return tf.where(due, moved, p), tf.where(due, 0.0, sign_sum), tf.where(due, 0.0, seen)


def _chosen(batch, p, seed, dtype=tf.float32):
    """1 for the samples an operation applies to (each with probability p), else 0."""
    return tf.cast(tf.random.stateless_uniform([batch], seed) < tf.cast(p, tf.float32), dtype)


def _draw(batch, p, seed, low, high, dtype=tf.float32):
    """A value in [low, high) for each sample an operation applies to, 0 for the others."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    return _chosen(batch, p, seeds[0], dtype) * tf.random.stateless_uniform([batch], seeds[1], low, high, dtype=dtype)


def affine_grid(batch, size: int, p, seed) -> tf.Tensor:
    """Per-sample input coordinates [batch, size, size, 2] (x, y) of every output pixel: a shift of up to 1/8 of the
    slice, a rotation of up to 10 degrees and a zoom of up to 10% about the centre (the ranges RaGAN always used)."""
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    shift_x, shift_y = (_draw(batch, p, seeds[k], -0.125, 0.125)[:, None, None] * size for k in (0, 1))
    angle = _draw(batch, p, seeds[2], -math.pi / 18, math.pi / 18)
    zoom = tf.exp(_draw(batch, p, seeds[3], -0.1, 0.1))
    cos, sin = (tf.cos(angle) / zoom)[:, None, None], (tf.sin(angle) / zoom)[:, None, None]
    centre = (size - 1) / 2
    offsets = tf.range(size, dtype=tf.float32) - centre
    ys, xs = tf.meshgrid(offsets, offsets, indexing="ij")
    return tf.stack([cos * xs - sin * ys + centre + shift_x, sin * xs + cos * ys + centre + shift_y], axis=-1)


def elastic_field(batch, size: int, p, seed) -> tf.Tensor:
    """Per-sample smooth displacements [batch, size, size, 2]: random moves of a coarse grid of control points,
    interpolated to every pixel, at most ELASTIC_PIXELS of the slice size."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    coarse = tf.random.stateless_uniform([batch, ELASTIC_GRID, ELASTIC_GRID, 2], seeds[1], -1.0, 1.0)
    strength = _chosen(batch, p, seeds[0])[:, None, None, None] * ELASTIC_PIXELS * size
    return tf.image.resize(coarse, [size, size], method="bilinear") * strength


def warp(pairs: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
    """Pairs sampled bilinearly at `grid` coordinates (outside the slice the nearest edge pixel repeats), image and
    label alike; the label is made one-hot again."""
    size, channels = pairs.shape[1], pairs.shape[-1]
    x = tf.clip_by_value(grid[..., 0], 0.0, size - 1.0)
    y = tf.clip_by_value(grid[..., 1], 0.0, size - 1.0)
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = tf.cast(x - x0, pairs.dtype)[..., None], tf.cast(y - y0, pairs.dtype)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, size - 1), tf.minimum(y0 + 1, size - 1)
    # The four neighbours of every output pixel, as rows of the flattened slices: one gather for all of them.
    corners = tf.stack([y0 * size + x0, y0 * size + x1, y1 * size + x0, y1 * size + x1], axis=-1)
    flat = tf.reshape(pairs, [tf.shape(pairs)[0], size * size, channels])
    values = tf.gather(flat, tf.reshape(corners, [tf.shape(pairs)[0], -1]), batch_dims=1)
    top_left, top_right, bottom_left, bottom_right = tf.unstack(
        tf.reshape(values, [tf.shape(pairs)[0], size, size, 4, channels]), axis=3
    )
    top = top_left * (1 - wx) + top_right * wx
    bottom = bottom_left * (1 - wx) + bottom_right * wx
    moved = top * (1 - wy) + bottom * wy
    return tf.concat([moved[..., :1], harden(moved[..., 1:])], axis=-1)


def harden(label: tf.Tensor) -> tf.Tensor:
    """One-hot forward, the soft values' gradient backward (straight-through)."""
    hard = tf.one_hot(tf.argmax(label, axis=-1), tf.shape(label)[-1], dtype=label.dtype)
    return label + tf.stop_gradient(hard - label)


def geometric(pairs: tf.Tensor, p, seed: tf.Tensor) -> tf.Tensor:
    """Affine and elastic moves in one resampling pass (one interpolation blurs less than two)."""
    batch, size = tf.shape(pairs)[0], pairs.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    return warp(pairs, affine_grid(batch, size, p, seeds[0]) + elastic_field(batch, size, p, seeds[1]))


def cutout(pairs: tf.Tensor, p, seed: tf.Tensor) -> tf.Tensor:
    """Erase a square per chosen sample: image to the lowest intensity (-1), label to background (class 0)."""
    batch, size = tf.shape(pairs)[0], pairs.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    centre = tf.random.stateless_uniform([batch, 2], seeds[1], 0.0, size - 1.0)
    positions = tf.range(size, dtype=tf.float32)
    inside_y = tf.abs(positions[None, :] - centre[:, :1]) < CUTOUT_SIDE * size / 2  # [batch, size]
    inside_x = tf.abs(positions[None, :] - centre[:, 1:]) < CUTOUT_SIDE * size / 2
    erased = tf.cast(inside_y[:, :, None] & inside_x[:, None, :], pairs.dtype)
    erased = (erased * _chosen(batch, p, seeds[0], pairs.dtype)[:, None, None])[..., None]
    empty = tf.constant([-1.0, 1.0] + [0.0] * (pairs.shape[-1] - 2), pairs.dtype)  # image -1, label background
    return pairs * (1 - erased) + empty * erased


# Intensity operations: each takes and returns a [batch, size, size, 1] image channel in about [-1, 1].
def gamma(image: tf.Tensor, p, seed: tf.Tensor) -> tf.Tensor:
    """A gamma curve with exponent in [0.74, 1.35] on [0, 1]; the floor keeps the gradient finite at black."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    batch = tf.shape(image)[0]
    exponent = tf.exp(tf.random.stateless_uniform([batch, 1, 1, 1], seeds[1], -0.3, 0.3, dtype=image.dtype))
    curved = tf.pow(tf.maximum((image + 1) / 2, 1e-3), exponent) * 2 - 1
    return image + _chosen(batch, p, seeds[0], image.dtype)[:, None, None, None] * (curved - image)


def brightness_contrast(image: tf.Tensor, p, seed: tf.Tensor) -> tf.Tensor:
    """An offset of up to 0.1 and a contrast factor in [0.82, 1.22] about the slice's mean."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    batch = tf.shape(image)[0]
    offset = _draw(batch, p, seeds[0], -0.1, 0.1, image.dtype)[:, None, None, None]
    contrast = tf.exp(_draw(batch, p, seeds[1], -0.2, 0.2, image.dtype))[:, None, None, None]
    mean = tf.reduce_mean(image, axis=[1, 2, 3], keepdims=True)
    return image * contrast + mean * (1 - contrast) + offset  # exactly the image when not chosen


def noise(image: tf.Tensor, p, seed: tf.Tensor) -> tf.Tensor:
    """Gaussian noise with a standard deviation of up to 0.05 (2.5% of the intensity range)."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    sigma = _draw(tf.shape(image)[0], p, seeds[0], 0.0, 0.05, image.dtype)[:, None, None, None]
    return image + sigma * tf.random.stateless_normal(tf.shape(image), seeds[1], dtype=image.dtype)


def blur(image: tf.Tensor, p, seed: tf.Tensor) -> tf.Tensor:
    """A random blend towards a Gaussian-smoothed copy (sigma 1 pixel): blur of varying strength."""
    taps = tf.exp(-tf.square(tf.range(-2.0, 3.0)) / 2)
    kernel = tf.cast(taps[:, None] * taps[None, :] / tf.reduce_sum(taps) ** 2, image.dtype)[:, :, None, None]
    padded = tf.pad(image, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")
    smooth = tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
    share = _draw(tf.shape(image)[0], p, seed, 0.0, 1.0, image.dtype)[:, None, None, None]
    return image + share * (smooth - image)


INTENSITY_OPERATIONS = (gamma, brightness_contrast, noise, blur)


def augment_pairs(pairs: tf.Tensor, p, seed: tf.Tensor) -> tf.Tensor:
    """Augment a batch of [batch, size, size, 1 + classes] pairs (image channel first, one-hot labels); `seed` is a
    stateless seed (shape [2]). A p of 0 skips all work: a plain number when traced, a tensor (ADA's variable, which
    starts at 0 and may stay there for long) when run. At p 0 every operation is exactly the identity, in values and
    gradients, so the skip changes nothing but the time."""
    if isinstance(p, (int, float)):
        return _augmented(pairs, p, seed) if p > 0 else pairs
    return tf.cond(p > 0, lambda: _augmented(pairs, p, seed), lambda: pairs)


def _augmented(pairs: tf.Tensor, p, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, num=2 + len(INTENSITY_OPERATIONS))
    pairs = cutout(geometric(pairs, p, seeds[0]), p, seeds[1])
    image = pairs[..., :1]
    for index, operation in enumerate(INTENSITY_OPERATIONS):
        image = operation(image, p, seeds[2 + index])
    return tf.concat([image, pairs[..., 1:]], axis=-1)
