"""Where the model lives: the generator makes an image and its label together; the discriminator judges the pair.

Two families (`--arch`; `FAMILIES`, `family(arch).generator(contract, width)`):
    dcgan      the baseline: upsample + 2 convolutions per doubling; plain strided-by-pooling discriminator.
    residual   residual blocks in both networks (each block's input, resized, is added to its output) and a
               minibatch standard deviation feature in the discriminator (it can see a batch that lacks variety,
               against collapse). A StyleGAN2-like skip generator (image and label logits from every resolution,
               upsampled and summed) was tried and dropped: in 200-400 steps on the sarcoma MR set its samples stayed
               blurred, without labels, and its discriminator won outright.

A conditional generator (`--mode conditional`) takes a one-hot label map [size, size, K] besides the latent vector
and makes the image only: the same upsampling path from the latent (which gives one label varied images), with every
normalised feature map scaled and shifted per pixel by amounts computed from the label map at that resolution (SPADE-
style modulation), so that the label's edges reach every resolution. The label map that computes each modulation is
smoothed by a 3x3 box first (`smooth_labels`, the default since spec version 3). Modulated from the hard one-hot map,
600 steps on the phantom drew organs and lesions as bright outlines with little fill and vessels with beaded rims: the
modulation's 3x3 convolutions see a hard edge as a pattern of its own, a cheap place for the generator to put what
the discriminator checks first (that an intensity edge lies where the label's edge is). From the smoothed map the
edge is a ramp and the regions come out filled (docs/conditional-vs-joint-phantom.md, sharpness). Its discriminator is
the joint one, fed the synthetic image with the label it was made for.

Three options against the defects the conditional generator still showed after 600 steps on the phantom (a faint dark
frame along the slice border, smooth texture, organs a little off the real intensity; screened in
docs/conditional-vs-joint-phantom.md; all on by default since spec version 4, when the phantom arm's converged U-Net
showed that together they stop the synthetic slices from costing the thin vessel Dice; the conditional generator's
only: a joint generator built with the two layers drew speckled noise):
    border_padding="reflect"  its 3x3 convolutions pad by mirroring the pixels inside the border (ReflectPad):
                              with zero padding every convolution sees the border as an edge of dark pixels, and
                              draws one.
    pixel_noise               per-pixel Gaussian noise scaled by a learned per-channel strength before every
                              normalisation (PixelNoise, after StyleGAN), drawn from each slice's latent vector, so
                              that generation stays repeatable and an edit of a label stays local.
    class_intensity           a generator loss term, not a layer (losses.class_intensity_gap).
Both layers are registered Keras layers (model_folder.load imports this module first), so a generator with them saves
and loads with safe_mode=True like the others; without the options (`--border-padding zero --no-pixel-noise`) the
graph is exactly the one from before.

The generator contract (`GeneratorContract`): a joint generator takes a latent vector and makes 1 + K channels, the
image (linear, about [-1, 1]; clipped when sampled) and K class probabilities (softmax; the label map is their
argmax); a conditional one takes a one-hot label map and a latent vector and makes the image. The discriminator sees
the same 1 + K channels, with labels one-hot (synthetic ones made hard in the train step). Both are plain Keras
functional models built from standard layers (and the two registered ones above, when asked for), so the generator
saves in Keras' native format and loads with safe_mode=True anywhere.
"""

import dataclasses
import itertools
import math

import keras
from keras import layers, ops

LATENT_SIZE = 128
LABEL_FEATURES = 16  # hidden features of each label modulation (conditional generator)


def channels_at(resolution: int, size: int, width: int) -> int:
    """Feature channels at a resolution: `width` at the full slice size, doubling per halving, at most 8x."""
    return width * min(8, size // resolution)


def pixel_norm(x, name: str):
    """Scale each pixel's feature vector to unit root-mean-square (keeps the generator's signal from drifting)."""
    x = layers.UnitNormalization(name=name)(x)
    return layers.Rescaling(math.sqrt(x.shape[-1]), name=f"{name}_scale")(x)


@keras.saving.register_keras_serializable(package="RaGAN")
class ReflectPad(layers.Layer):
    """Pads rows and columns by mirroring the pixels inside the border, so that a convolution with padding="valid"
    after it sees the slice continue at the border instead of zeros (zeros draw a dark frame along the border)."""

    def __init__(self, pad: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.pad  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="RaGAN")
class PixelNoise(layers.Layer):
    """Adds Gaussian noise, one value per pixel shared by all channels, scaled per channel by a learned strength that
    starts at 0 (StyleGAN's noise inputs): texture that the latent vector need not encode. Called on [features,
    latent vectors].

    Each slice's noise is drawn statelessly, its seed made from the bits of that slice's latent vector and the layer's
    `salt`: the same latent gives the same noise, so `ragan generate --seed` repeats itself, a run resumes
    bit-identically, and a label painted differently changes the image only where it changed, with no model input or
    random-state variable; every other latent, and so every training step, gets other noise."""

    def __init__(self, salt: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.salt = salt

    def build(self, shapes):
        self.strength = self.add_weight(shape=(shapes[0][-1],), initializer="zeros", name="strength")

    def call(self, inputs):
        import tensorflow as tf

        x, latent = inputs
        bits = tf.bitcast(tf.cast(latent, "float32"), tf.int32)
        weights = tf.range(1, bits.shape[-1] + 1, dtype=tf.int32)
        seeds = tf.stack([tf.reduce_sum(bits, -1) + self.salt, tf.reduce_sum(bits * weights, -1)], axis=-1)
        shape = tf.concat([tf.shape(x)[1:-1], [1]], 0)
        noise = tf.map_fn(
            lambda seed: tf.random.stateless_normal(shape, seed), tf.stop_gradient(seeds), fn_output_signature="float32"
        )
        return x + ops.cast(noise, x.dtype) * ops.cast(self.strength, x.dtype)

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "salt": self.salt}


def conv(x, filters: int, name: str, reflect: bool, **kwargs):
    """A 3x3 convolution that keeps the size: zero padding, or mirrored rows and columns at the border (`reflect`)."""
    if reflect:
        x = ReflectPad(name=f"{name}_pad")(x)
    return layers.Conv2D(filters, 3, padding="valid" if reflect else "same", name=name, **kwargs)(x)


def modulate(x, label, name: str, smooth: bool, reflect: bool = False):
    """SPADE-style: scale (1 + gamma) and shift (beta) each normalised feature per pixel, both computed from the
    one-hot label map averaged down to the resolution of `x` (and, if `smooth`, averaged over 3x3 pixels there)."""
    factor = label.shape[1] // x.shape[1]
    here = layers.AveragePooling2D(factor, name=f"{name}_label")(label) if factor > 1 else label
    if smooth:  # padding excluded from the average: a one-hot map stays a distribution at the slice border
        here = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_smooth")(here)
    hidden = conv(here, LABEL_FEATURES, f"{name}_hidden", reflect, activation="relu")
    gamma = conv(hidden, x.shape[-1], f"{name}_gamma", reflect)
    beta = conv(hidden, x.shape[-1], f"{name}_beta", reflect)
    scaled = layers.Multiply(name=f"{name}_scaled")([x, layers.Rescaling(1.0, offset=1.0, name=f"{name}_gain")(gamma)])
    return layers.Add(name=f"{name}_shifted")([scaled, beta])


def _generator(
    size: int,
    classes: int,
    width: int,
    name: str,
    residual: bool,
    conditional: bool,
    smooth_labels: bool,
    reflect: bool = False,
    noise: bool = False,
) -> keras.Model:
    """Latent vector -> 4x4 features -> per doubling: upsample (nearest; bilinear when residual), 2 convolutions
    (plus the upsampled input when residual) -> image + class probabilities; conditional: label map + latent ->
    the same path with every normalisation modulated by the (smoothed) label -> image."""
    latent = keras.Input((LATENT_SIZE,), name="latent")
    label_map = keras.Input((size, size, classes), name="label") if conditional else None
    noise_layers = itertools.count()  # numbers each noise layer: its salt, so every resolution gets other noise

    def norm(x, name):
        if noise:
            x = PixelNoise(salt=next(noise_layers), name=f"{name}_noise")([x, latent])
        x = pixel_norm(x, name)
        return modulate(x, label_map, f"{name}_mod", smooth_labels, reflect) if conditional else x

    x = layers.Dense(4 * 4 * channels_at(4, size, width), name="project")(latent)
    x = layers.Reshape((4, 4, channels_at(4, size, width)))(x)
    x = layers.LeakyReLU(0.2)(x)
    x = norm(x, "norm4")
    for level in range(int(math.log2(size // 4))):
        resolution = 8 * 2**level
        filters = channels_at(resolution, size, width)
        # float32 under mixed precision too: the resize computes in float32 whatever its input, and XLA refuses its
        # gradient inside a float16 graph ("different precisions ... ResizeBilinearGrad").
        interpolation = "bilinear" if residual else "nearest"
        up = layers.UpSampling2D(2, interpolation=interpolation, dtype="float32", name=f"up{resolution}")(x)
        x = up
        for k in range(2):
            x = conv(x, filters, f"conv{resolution}_{k}", reflect)
            x = layers.LeakyReLU(0.2)(x)
            x = norm(x, f"norm{resolution}_{k}")
        if residual:
            if up.shape[-1] != filters:
                up = layers.Conv2D(filters, 1, use_bias=False, name=f"shortcut{resolution}")(up)
            x = layers.Rescaling(1 / math.sqrt(2), name=f"merge{resolution}")(layers.Add()([x, up]))
    image = layers.Conv2D(1, 1, dtype="float32", name="image")(x)
    if conditional:
        return keras.Model([label_map, latent], image, name=name)
    label = layers.Conv2D(classes, 1, name="to_label")(x)
    label = layers.Activation("softmax", dtype="float32", name="label")(label)
    pair = layers.Concatenate(dtype="float32", name="pair")([image, label])
    return keras.Model(latent, pair, name=name)


class MinibatchStddev(layers.Layer):
    """Appends one channel: the mean over features of their standard deviation across the (replica) batch. Used
    by the discriminator only, which is checkpointed as weights and never saved as a Keras file."""

    def call(self, x):
        # In float32: under mixed precision 1e-8 is 0 in float16, and where a feature is the same in every slice of
        # the batch (air around a body) the square root's gradient at a zero variance is infinite: R1 becomes NaN.
        spread = ops.mean(ops.sqrt(ops.var(ops.cast(x, "float32"), axis=0) + 1e-8))
        return ops.concatenate([x, ops.zeros_like(x[..., :1]) + ops.cast(spread, x.dtype)], axis=-1)


def _discriminator(size: int, classes: int, width: int, residual: bool) -> keras.Model:
    """Image + label channels -> per halving: 2 convolutions and downsampling (plus the downsampled input when
    residual) down to 4x4 -> (minibatch deviation and a convolution when residual) -> one realness score."""
    pair = keras.Input((size, size, 1 + classes), name="pair")
    x = layers.Conv2D(width, 1, name="from_pair")(pair)
    x = layers.LeakyReLU(0.2)(x)
    resolution = size
    while resolution > 4:
        filters = channels_at(resolution // 2, size, width)
        block_input = x
        for k, count in enumerate((channels_at(resolution, size, width), filters)):
            x = layers.Conv2D(count, 3, padding="same", name=f"conv{resolution}_{k}")(x)
            x = layers.LeakyReLU(0.2)(x)
        x = layers.AveragePooling2D(2, name=f"down{resolution}")(x)
        if residual:
            shortcut = layers.AveragePooling2D(2, name=f"skip_down{resolution}")(block_input)
            if shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"shortcut{resolution}")(shortcut)
            x = layers.Rescaling(1 / math.sqrt(2), name=f"merge{resolution}")(layers.Add()([x, shortcut]))
        resolution //= 2
    if residual:
        x = MinibatchStddev(name="batch_spread")(x)
        x = layers.Conv2D(channels_at(4, size, width), 3, padding="same", name="conv4")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(channels_at(4, size, width), name="features")(x)
    x = layers.LeakyReLU(0.2)(x)
    score = layers.Dense(1, dtype="float32", name="score")(x)
    return keras.Model(pair, score, name="discriminator")


@dataclasses.dataclass(frozen=True)
class GeneratorContract:
    """What a generator of `mode` takes and makes, per slice (without the batch axis): the trainer, the model folder
    and `generate` rely on these shapes and on the class probabilities of a joint generator summing to 1."""

    mode: str  # joint or conditional (spec.mode)
    size: int
    classes: int

    @property
    def inputs(self) -> tuple[tuple[int, ...], ...]:
        """joint: the latent vector; conditional: the one-hot label map, then the latent vector."""
        latent = (LATENT_SIZE,)
        return ((self.size, self.size, self.classes), latent) if self.mode == "conditional" else (latent,)

    @property
    def output(self) -> tuple[int, ...]:
        """joint: the image and K class probabilities (softmax); conditional: the image only."""
        return (self.size, self.size, 1 if self.mode == "conditional" else 1 + self.classes)


@dataclasses.dataclass(frozen=True)
class Family:
    """An architecture family (`--arch`): its generator and discriminator, built for a slice size, K classes and a
    width."""

    name: str
    residual: bool

    def generator(
        self,
        contract: GeneratorContract,
        width: int,
        name: str = "generator",
        smooth_labels: bool = True,
        border_padding: str = "zero",
        pixel_noise: bool = False,
    ) -> keras.Model:
        """The generator that fulfils `contract`; a conditional one is modulated from the smoothed label map unless
        `smooth_labels` is false (runs from before spec version 3). A conditional one's options: border_padding, how
        its 3x3 convolutions pad ("zero" or "reflect"); pixel_noise, noise added before every normalisation. Without
        them, the plain graph (runs from before spec version 4); the trainer passes the spec's values, reflect and
        noise by default. A joint generator is always the plain graph: with them its 600 phantom steps drew speckled
        noise (docs/conditional-vs-joint-phantom.md, last section)."""
        conditional = contract.mode == "conditional"
        reflect, pixel_noise = conditional and border_padding == "reflect", conditional and pixel_noise
        return _generator(
            contract.size,
            contract.classes,
            width,
            name,
            self.residual,
            conditional,
            smooth_labels,
            reflect,
            pixel_noise,
        )

    def discriminator(self, size: int, classes: int, width: int) -> keras.Model:
        """[batch, size, size, 1 + classes] (image and one-hot label) -> [batch, 1] realness scores."""
        return _discriminator(size, classes, width, residual=self.residual)


FAMILIES = {family.name: family for family in (Family("dcgan", residual=False), Family("residual", residual=True))}


def family(arch: str) -> Family:
    if arch not in FAMILIES:
        raise ValueError(f"unknown architecture '{arch}'")
    return FAMILIES[arch]
