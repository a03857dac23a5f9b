"""Augmentation, one operation at a time, and the adaptive rule that sets its strength (ADA).

A bright square labelled as class 1 goes through each operation: geometric operations and cutout must move or erase
it identically in image and label, and the label must stay one-hot; intensity operations must change the image and
leave the label as it was. Everything stays differentiable for synthetic pairs, repeatable from the seed, and
compiles with XLA with p read from a variable."""

import numpy as np
import pytest
import tensorflow as tf

from RaGANLib.errors import BadInput
from RaGANLib.spec import TrainSpec, augment_setting
from RaGANLib.training import augment

SIZE, CLASSES = 64, 3
SEED = tf.constant([3, 4], tf.int64)


def square_pairs(batch: int = 6) -> tf.Tensor:
    """Dark slices with a bright square that the label marks as class 1 (class 2 unused)."""
    image = np.full((batch, SIZE, SIZE), -1.0, np.float32)
    label = np.zeros((batch, SIZE, SIZE), np.int32)
    image[:, 20:36, 24:40], label[:, 20:36, 24:40] = 0.8, 1
    return tf.concat([image[..., None], tf.one_hot(label, CLASSES)], axis=-1)


def assert_image_and_label_agree(pairs: np.ndarray) -> None:
    label = pairs[..., 1:]
    assert set(np.unique(label)) == {0.0, 1.0} and np.all(label.sum(axis=-1) == 1), "label is no longer one-hot"
    for image, square in zip(pairs[..., 0] > -0.1, label[..., 1] == 1):
        assert np.mean(image == square) > 0.995  # a pixel on the square's edge may round either way


def moved_slices(moved: np.ndarray, pairs: tf.Tensor) -> int:
    return sum(bool(np.any(m != o)) for m, o in zip(moved[..., 2], pairs.numpy()[..., 2]))


def test_shift_rotation_and_zoom_move_image_and_label_together():
    pairs = square_pairs()
    moved = augment.warp(pairs, augment.affine_grid(6, SIZE, 1.0, SEED)).numpy()
    assert_image_and_label_agree(moved)
    assert moved_slices(moved, pairs) == 6, "some slice did not move"


def test_elastic_deformation_moves_image_and_label_together():
    pairs = square_pairs()
    identity = augment.affine_grid(6, SIZE, 0.0, SEED)
    field = augment.elastic_field(6, SIZE, 1.0, SEED)
    assert 0.2 < float(tf.reduce_max(tf.abs(field))) <= augment.ELASTIC_PIXELS * SIZE
    moved = augment.warp(pairs, identity + field).numpy()
    assert_image_and_label_agree(moved)
    assert moved_slices(moved, pairs) >= 5
    assert np.array_equal(augment.warp(pairs, identity).numpy(), pairs.numpy())  # no move: the very same pairs


def test_cutout_erases_image_and_label_alike():
    pairs = square_pairs(32)
    cut = augment.cutout(pairs, 1.0, SEED).numpy()
    erased = np.any(cut != pairs.numpy(), axis=-1)
    assert erased.any(axis=(1, 2)).sum() >= 4  # some squares overlap the labelled square
    assert np.all(cut[..., 0][erased] == -1) and np.all(cut[..., 1][erased] == 1)  # dark image, background label
    assert_image_and_label_agree(cut)


@pytest.mark.parametrize("operation", augment.INTENSITY_OPERATIONS, ids=lambda o: o.__name__)
def test_intensity_operation_changes_the_image_only(operation):
    pairs = square_pairs()
    image = pairs[..., :1]
    changed = operation(image, 1.0, SEED).numpy()
    assert np.abs(changed - image.numpy()).max() > 0.01
    assert np.array_equal(operation(image, tf.Variable(0.0), SEED).numpy(), image.numpy())  # p = 0: untouched
    # In the whole chain the label is what geometry and cutout made of it, whatever the intensity operations did.
    seeds = tf.random.experimental.stateless_split(SEED, num=2 + len(augment.INTENSITY_OPERATIONS))
    expected = augment.cutout(augment.geometric(pairs, 1.0, seeds[0]), 1.0, seeds[1])[..., 1:]
    assert np.array_equal(augment.augment_pairs(pairs, 1.0, SEED)[..., 1:].numpy(), expected.numpy())


def test_synthetic_pairs_pass_gradients_the_same_every_time_and_the_seed_repeats():
    pairs = tf.Variable(square_pairs(16))
    weights = tf.random.stateless_normal(pairs.shape, [0, 1])

    def gradient():
        with tf.GradientTape() as tape:
            score = tf.reduce_sum(augment.augment_pairs(pairs, 1.0, SEED) * weights)
        return tape.gradient(score, pairs).numpy()

    first = gradient()
    assert np.abs(first[..., 0]).sum() > 0 and np.abs(first[..., 1:]).sum() > 0
    assert all(np.array_equal(first, gradient()) for _ in range(5))  # summed in the same order: exact resume needs it
    once, again = (augment.augment_pairs(pairs, 0.5, SEED).numpy() for _ in range(2))
    assert np.array_equal(once, again)
    assert not np.array_equal(once, augment.augment_pairs(pairs, 0.5, tf.constant([3, 5], tf.int64)).numpy())


def test_compiled_with_xla_p_changes_without_retracing():
    p = tf.Variable(0.0)
    compiled = tf.function(lambda pairs, seed: augment.augment_pairs(pairs, p, seed), jit_compile=True)
    pairs = square_pairs()
    assert np.array_equal(compiled(pairs, SEED).numpy(), pairs.numpy())
    p.assign(1.0)
    moved = compiled(pairs, SEED).numpy()
    assert_image_and_label_agree(moved)
    assert moved_slices(moved, pairs) == 6
    assert compiled.experimental_get_tracing_count() == 1


def run_ada(p: float, signs: list[float], images_per_step: int = 16) -> list[float]:
    """p after each step whose real scores had the mean sign in `signs`."""
    p, sign_sum, seen, history = tf.constant(p), tf.constant(0.0), tf.constant(0.0), []
    for sign in signs:
        p, sign_sum, seen = augment.ada_adjust(p, sign_sum + sign * images_per_step, seen + images_per_step)
        history.append(float(p))
    return history


def test_ada_raises_p_while_the_discriminator_is_sure_of_real_pairs_and_lowers_it_otherwise():
    per_interval = augment.ADA_INTERVAL_IMAGES / augment.ADA_SPEED_IMAGES
    steps_per_interval = augment.ADA_INTERVAL_IMAGES // 16
    rising = run_ada(0.0, [1.0] * 3 * steps_per_interval)
    # p moves only when an interval of images is complete, by the documented step
    assert rising[steps_per_interval - 2] == 0.0
    assert rising[-1] == pytest.approx(3 * per_interval)
    assert run_ada(0.1, [-1.0] * steps_per_interval)[-1] == pytest.approx(0.1 - per_interval)
    # the signal against the target decides the direction, not its sign; the bounds hold
    assert run_ada(0.3, [0.8] * steps_per_interval)[-1] == pytest.approx(0.3 + per_interval)
    assert run_ada(0.3, [0.4] * steps_per_interval)[-1] == pytest.approx(0.3 - per_interval)
    assert run_ada(0.0, [-1.0] * steps_per_interval)[-1] == 0.0
    assert run_ada(augment.ADA_MAX_P, [1.0] * steps_per_interval)[-1] == pytest.approx(augment.ADA_MAX_P)


def test_spec_takes_ada_or_a_probability_and_refuses_anything_else():
    base = {"pairs": [["image.nrrd", "label.nrrd"]]}
    assert TrainSpec().augment == 0.5
    for value in ("ada", 0.3, 0, 1):  # a number, as spec.json files before ADA held, stays valid
        assert TrainSpec.from_json({**base, "augment": value}, "spec 'x'").augment == value
    for value in ("fast", "ADA", 1.5, -0.1, True, None, float("nan")):
        with pytest.raises(BadInput, match=r"spec 'x': augment must be ada or a probability between 0 and 1"):
            TrainSpec.from_json({**base, "augment": value}, "spec 'x'")
    assert [augment_setting(text) for text in ("ada", "0.25", "1", "often")] == ["ada", 0.25, 1.0, "often"]
