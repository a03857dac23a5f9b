"""Where the model lives: the generator makes an image and its label together; the discriminator judges the pair.

The generator's output has 1 + K channels: the image (linear, about [-1, 1]; clipped when sampled) and K class
probabilities (softmax); the label map is their argmax. The discriminator sees the same 1 + K channels, with labels
one-hot (synthetic ones made hard in the train step). Both are plain Keras functional models built from standard
layers only, so the generator saves in Keras' native format and loads with safe_mode=True anywhere.
"""

import math

import keras
from keras import layers

LATENT_SIZE = 128


def channels_at(resolution: int, size: int, width: int) -> int:
    """Feature channels at a resolution: `width` at the full slice size, doubling per halving, at most 8x."""
    return width * min(8, size // resolution)


def pixel_norm(x, name: str):
    """Scale each pixel's feature vector to unit root-mean-square (keeps the generator's signal from drifting)."""
    x = layers.UnitNormalization(name=name)(x)
    return layers.Rescaling(math.sqrt(x.shape[-1]), name=f"{name}_scale")(x)


def build_generator(size: int, classes: int, width: int = 16, name: str = "generator") -> keras.Model:
    """Latent vector -> 4x4 features -> (upsample, 2 convolutions) per doubling -> image + class probabilities."""
    latent = keras.Input((LATENT_SIZE,), name="latent")
    x = layers.Dense(4 * 4 * channels_at(4, size, width), name="project")(latent)
    x = layers.Reshape((4, 4, channels_at(4, size, width)))(x)
    x = layers.LeakyReLU(0.2)(x)
    x = pixel_norm(x, "norm4")
    for level in range(int(math.log2(size // 4))):
        resolution = 8 * 2**level
        filters = channels_at(resolution, size, width)
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{resolution}")(x)
        for k in range(2):
            x = layers.Conv2D(filters, 3, padding="same", name=f"conv{resolution}_{k}")(x)
            x = layers.LeakyReLU(0.2)(x)
            x = pixel_norm(x, f"norm{resolution}_{k}")
    image = layers.Conv2D(1, 1, dtype="float32", name="image")(x)
    label = layers.Conv2D(classes, 1, name="to_label")(x)
    label = layers.Activation("softmax", dtype="float32", name="label")(label)
    pair = layers.Concatenate(dtype="float32", name="pair")([image, label])
    return keras.Model(latent, pair, name=name)


def build_discriminator(size: int, classes: int, width: int = 16) -> keras.Model:
    """Image + label channels -> (2 convolutions, downsample) per halving down to 4x4 -> one realness score."""
    pair = keras.Input((size, size, 1 + classes), name="pair")
    x = layers.Conv2D(width, 1, name="from_pair")(pair)
    x = layers.LeakyReLU(0.2)(x)
    resolution = size
    while resolution > 4:
        for k, filters in enumerate((channels_at(resolution, size, width), channels_at(resolution // 2, size, width))):
            x = layers.Conv2D(filters, 3, padding="same", name=f"conv{resolution}_{k}")(x)
            x = layers.LeakyReLU(0.2)(x)
        x = layers.AveragePooling2D(2, name=f"down{resolution}")(x)
        resolution //= 2
    x = layers.Flatten()(x)
    x = layers.Dense(channels_at(4, size, width), name="features")(x)
    x = layers.LeakyReLU(0.2)(x)
    score = layers.Dense(1, dtype="float32", name="score")(x)
    return keras.Model(pair, score, name="discriminator")
