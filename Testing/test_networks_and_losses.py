"""The trainer's core without training: every network family builds generators that keep the generator contract
(what they take and make, class probabilities that sum to 1) and discriminators that score pairs, and the losses
point the right way (RaGANLib/model/networks.py, RaGANLib/training/losses.py). Tiny networks (16 px, width 4): a second
each."""

import numpy as np
import pytest
import tensorflow as tf

from RaGANLib.model.networks import FAMILIES, LATENT_SIZE, GeneratorContract, family
from RaGANLib.spec import ARCHITECTURES
from RaGANLib.training import losses

SIZE, CLASSES, WIDTH, BATCH = 16, 3, 4, 2


def test_the_registry_holds_every_architecture_the_spec_offers_and_refuses_others():
    assert tuple(FAMILIES) == ARCHITECTURES
    with pytest.raises(ValueError, match="unknown architecture 'stylegan'"):
        family("stylegan")


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("mode", ["joint", "conditional"])
def test_each_family_keeps_the_generator_contract(arch, mode):
    contract = GeneratorContract(mode, SIZE, CLASSES)
    generator = family(arch).generator(contract, WIDTH)
    takes = generator.input_shape if isinstance(generator.input_shape, list) else [generator.input_shape]
    assert tuple(tuple(shape[1:]) for shape in takes) == contract.inputs
    assert tuple(generator.output_shape[1:]) == contract.output

    rng = np.random.default_rng(0)
    latents = rng.standard_normal((BATCH, LATENT_SIZE)).astype(np.float32)
    if mode == "conditional":
        label = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, (BATCH, SIZE, SIZE))]
        made = np.asarray(generator([label, latents], training=False))
        assert made.shape == (BATCH, SIZE, SIZE, 1)
    else:
        made = np.asarray(generator(latents, training=False))
        assert made.shape == (BATCH, SIZE, SIZE, 1 + CLASSES)
        probabilities = made[..., 1:]
        assert np.all(probabilities >= 0) and np.allclose(probabilities.sum(axis=-1), 1, atol=1e-5)
    assert np.all(np.isfinite(made))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_family_discriminator_scores_each_pair_once(arch):
    discriminator = family(arch).discriminator(SIZE, CLASSES, WIDTH)
    pairs = np.random.default_rng(1).standard_normal((BATCH, SIZE, SIZE, 1 + CLASSES)).astype(np.float32)
    assert tuple(discriminator.input_shape[1:]) == (SIZE, SIZE, 1 + CLASSES)
    assert np.asarray(discriminator(pairs, training=False)).shape == (BATCH, 1)


def test_the_losses_reward_what_each_network_is_for():
    high, low = tf.fill([BATCH, 1], 3.0), tf.fill([BATCH, 1], -3.0)
    # The discriminator does well when real pairs score high and synthetic ones low.
    right, wrong = losses.discriminator_loss(high, low), losses.discriminator_loss(low, high)
    assert right.shape == (BATCH,) and np.all(right.numpy() < wrong.numpy())
    # The generator does well when its pairs score high.
    assert np.all(losses.generator_loss(high).numpy() < losses.generator_loss(low).numpy())
    assert np.all(losses.discriminator_loss(high, low).numpy() > 0)  # softplus: a loss never below 0


def test_r1_is_zero_for_a_constant_discriminator_and_positive_otherwise():
    real = tf.constant(np.random.default_rng(2).standard_normal((BATCH, SIZE, SIZE, 1 + CLASSES)), tf.float32)
    discriminator = family("dcgan").discriminator(SIZE, CLASSES, WIDTH)
    score, r1 = losses.scores_and_r1(discriminator, real, with_r1=True)
    assert score.shape == (BATCH, 1) and np.all(r1.numpy() > 0)
    _, skipped = losses.scores_and_r1(discriminator, real, with_r1=False)
    assert np.all(skipped.numpy() == 0)

    for variable in discriminator.weights:  # every weight 0 and the score's bias 2: the same score for any pair
        variable.assign(tf.zeros_like(variable))
    discriminator.get_layer("score").bias.assign([2.0])
    score, r1 = losses.scores_and_r1(discriminator, real, with_r1=True)
    assert np.all(score.numpy() == 2.0) and np.all(r1.numpy() == 0)
    # The penalty counts R1_INTERVAL times over (lazy R1), at half of gamma.
    total = losses.with_r1_penalty(tf.zeros([BATCH]), tf.ones([BATCH]), gamma=10.0)
    assert np.allclose(total.numpy(), 10.0 / 2 * losses.R1_INTERVAL)
