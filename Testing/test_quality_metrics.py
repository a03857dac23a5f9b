"""Quality metrics: slice features have the stated names and defaults, the distances are 0 for identical sets, match
the closed form for Gaussians and grow for shifted or blurred sets, MS-SSIM tells copies from noise, label
statistics count empty and fragmented slices, nearest NCC finds copies, so memorisation flags them, and fine detail
reads blur as low and speckle as high."""

import numpy as np
import pytest

from RaGANLib.quality.features import component_counts, feature_names, slice_features
from RaGANLib.quality.metrics import (
    DETAIL_BAND,
    detail_is_off,
    detail_verdict,
    fine_detail,
    fine_detail_ratio,
    frechet_distance,
    kernel_distance,
    label_statistics,
    mean_pairwise_ms_ssim,
    memorisation,
    nearest_ncc,
    standardise,
)

SIZE = 64


def blobs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Slices of three smooth random blobs on noise, in [-1, 1]; class 1 where the blobs are, class 2 in their
    brightest cores."""
    rng = np.random.default_rng(seed)
    grid = np.arange(SIZE, dtype=np.float64)
    field = np.zeros((count, SIZE, SIZE))
    for _ in range(3):
        row, column = (rng.uniform(12, SIZE - 12, (count, 1, 1)) for _ in range(2))
        radius = rng.uniform(4, 9, (count, 1, 1))
        field += np.exp(-((grid[:, None] - row) ** 2 + (grid[None, :] - column) ** 2) / (2 * radius**2))
    images = np.clip(-0.8 + 1.2 * field + rng.normal(0, 0.1, field.shape), -1, 1)
    labels = (field > 0.4).astype(np.uint8) + (field > 0.9).astype(np.uint8)
    return images, labels


def box_blur(images: np.ndarray, width: int = 5) -> np.ndarray:
    padded = np.pad(images, ((0, 0), (width // 2, width // 2), (width // 2, width // 2)), mode="edge")
    return sum(padded[:, r : r + SIZE, c : c + SIZE] for r in range(width) for c in range(width)) / width**2


@pytest.fixture(scope="module")
def feature_sets():
    """Standardised features of a reference set, an independent sample of the same generator, the reference
    brightened and the reference blurred."""
    images, labels = blobs(200, seed=1)
    other_images, other_labels = blobs(200, seed=2)
    sets = [
        slice_features(images, labels, 3)[0],
        slice_features(other_images, other_labels, 3)[0],
        slice_features(np.clip(images + 0.3, -1, 1), labels, 3)[0],
        slice_features(box_blur(images), labels, 3)[0],
    ]
    return standardise(*sets)


def test_slice_features_are_finite_with_one_name_per_column():
    images, labels = blobs(10, seed=0)
    features, names = slice_features(images, labels, 3)
    assert features.shape == (10, 39) and len(names) == 39 == len(set(names))
    assert names == feature_names(3) and names[0] == "intensity_mean" and "lbp_9" in names
    assert np.isfinite(features).all()
    assert len(feature_names(2)) == 31


def test_slice_features_of_a_block_and_an_absent_class():
    image = np.full((1, SIZE, SIZE), -1.0)
    label = np.zeros((1, SIZE, SIZE), dtype=np.uint8)
    image[0, 8:24, 40:56] = 0.5
    label[0, 8:24, 40:56] = 1
    features, names = slice_features(image, label, 3)
    row = dict(zip(names, features[0]))
    assert row["class1_intensity_mean"] == pytest.approx(0.5) and row["class1_intensity_std"] == pytest.approx(0)
    assert row["class1_area"] == pytest.approx(256 / SIZE**2)
    assert row["class1_perimeter"] == pytest.approx(60 / SIZE)  # the 16x16 block's outer ring of pixels
    assert row["class1_components"] == 1 and row["class1_present"] == 1
    assert row["class1_centroid_row"] == pytest.approx(0.25) and row["class1_centroid_col"] == pytest.approx(0.75)
    absent = {name: row[f"class2_{name}"] for name in ("intensity_mean", "intensity_std", "area", "perimeter")}
    assert absent == {"intensity_mean": 0, "intensity_std": 0, "area": 0, "perimeter": 0}
    assert (row["class2_components"], row["class2_present"]) == (0, 0)
    assert (row["class2_centroid_row"], row["class2_centroid_col"]) == (0.5, 0.5)
    assert row["intensity_p5"] == -1 and row["intensity_p95"] == 0.5


def test_texture_of_a_constant_slice_and_a_checkerboard():
    rows, columns = np.indices((SIZE, SIZE))
    images = np.stack([np.zeros((SIZE, SIZE)), np.where((rows + columns) % 2, 1.0, -1.0)])
    features, names = slice_features(images, np.zeros(images.shape, dtype=np.uint8), 2)
    flat, checker = (dict(zip(names, f)) for f in features)
    glcm = ("glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_correlation")
    assert [flat[n] for n in glcm] == pytest.approx([0, 1, 1, 1])
    assert flat["lbp_8"] == 1  # every neighbour equals the centre
    assert checker["glcm_contrast"] == pytest.approx(15**2) and checker["glcm_correlation"] == pytest.approx(-1)
    # Bright centres see alternating neighbours (not uniform), dark ones see no darker neighbour.
    assert checker["lbp_9"] == pytest.approx(0.5) and checker["lbp_8"] == pytest.approx(0.5)


def test_component_counts_use_8_connectivity():
    label = np.zeros((2, SIZE, SIZE), dtype=np.uint8)
    label[0, 5:10, 5:10] = 1
    label[0, [30, 31, 32], [30, 31, 32]] = 1  # touching only at corners: one component
    label[0, 50:52, 10:40] = 1
    label[0, 40:45, 50:55] = 2
    assert component_counts(label, 3).tolist() == [[3, 1], [0, 0]]


def test_label_statistics_count_empty_and_fragmented_slices():
    labels = np.zeros((4, SIZE, SIZE), dtype=np.uint8)
    labels[1, 10:20, 10:20] = 1
    labels[2, 10:20, 10:20] = 1
    labels[2, 40:50, 40:50] = 1  # two pieces
    labels[3, 0:8, 0:8] = 1
    labels[3, 30:38, 30:38] = 2
    stats = label_statistics(labels, 4)
    assert stats["slices"] == 4 and stats["empty_share"] == 0.25 and stats["fragmented_share"] == 0.25
    first, second, third = stats["classes"]
    assert first["frequency"] == 0.75 and first["components_mean"] == pytest.approx(4 / 3)
    assert first["area"]["p50"] == pytest.approx(100 / SIZE**2)
    assert 64 / SIZE**2 < first["area"]["p5"] < first["area"]["p95"] < 200 / SIZE**2
    assert second["frequency"] == 0.25 and second["area"]["p50"] == pytest.approx(64 / SIZE**2)
    assert third == {"class": 3, "frequency": 0.0, "area": None, "components_mean": None}


def exact_sample(mean, covariance, count: int, seed: int) -> np.ndarray:
    """Rows whose sample mean and (ddof 1) covariance are exactly `mean` and `covariance`."""
    z = np.random.default_rng(seed).normal(size=(count, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T
    return np.asarray(mean) + z @ np.linalg.cholesky(covariance).T


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    one = frechet_distance(exact_sample([1.0], [[4.0]], 50, 0), exact_sample([-1.0], [[9.0]], 80, 1))
    assert one == pytest.approx(2**2 + (2 - 3) ** 2)
    cov_a, cov_b = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[1.0, -0.5], [-0.5, 3.0]])
    a, b = exact_sample([0.0, 1.0], cov_a, 60, 2), exact_sample([2.0, -1.0], cov_b, 70, 3)
    # For 2x2 matrices, Tr((S_a S_b)^(1/2)) = sqrt(Tr(S_a S_b) + 2 sqrt(det S_a det S_b)).
    trace_root = np.sqrt(np.trace(cov_a @ cov_b) + 2 * np.sqrt(np.linalg.det(cov_a) * np.linalg.det(cov_b)))
    expected = 2**2 + 2**2 + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    assert frechet_distance(a, b) == pytest.approx(expected)


def test_distances_are_zero_for_identical_sets_and_grow_for_shifted_or_blurred_ones(feature_sets):
    reference, independent, shifted, blurred = feature_sets
    assert frechet_distance(reference, reference) < 1e-6
    # The unbiased estimate for a set against itself is only the O(1/subset size) bias of pairing rows with
    # themselves; shifts and blurs give thousands.
    kid_same, _ = kernel_distance(reference, reference)
    assert abs(kid_same) < 0.1
    frechet_independent = frechet_distance(reference, independent)
    kid_independent, _ = kernel_distance(reference, independent)
    assert abs(kid_independent) < 0.1
    for changed in (shifted, blurred):
        assert frechet_distance(reference, changed) > 100 * frechet_independent
        assert kernel_distance(reference, changed)[0] > 1000


def test_kernel_distance_is_deterministic_for_a_seed(feature_sets):
    reference, independent = feature_sets[:2]
    assert kernel_distance(reference, independent, seed=3) == kernel_distance(reference, independent, seed=3)
    assert kernel_distance(reference, independent, seed=3) != kernel_distance(reference, independent, seed=4)
    with pytest.raises(ValueError):
        kernel_distance(reference[:1], independent)


def test_ms_ssim_is_one_for_copies_and_low_for_noise():
    images, _ = blobs(1, seed=5)
    assert mean_pairwise_ms_ssim(np.repeat(images, 4, axis=0), pairs=20) == pytest.approx(1, abs=1e-4)
    noise = np.random.default_rng(6).uniform(-1, 1, (8, SIZE, SIZE))
    score = mean_pairwise_ms_ssim(noise, pairs=20, seed=1)
    assert score < 0.2 and score == mean_pairwise_ms_ssim(noise, pairs=20, seed=1)
    assert np.isnan(mean_pairwise_ms_ssim(images))


def test_nearest_ncc_finds_copies_whatever_their_brightness_and_contrast():
    references, _ = blobs(50, seed=7)
    queries = np.concatenate([references[[7, 3]] * 0.5 + 0.2, np.full((1, SIZE, SIZE), 0.3)])
    ncc, nearest = nearest_ncc(queries, references, batch=16)
    assert ncc[:2] == pytest.approx(1, abs=1e-5) and nearest[:2].tolist() == [7, 3]
    assert ncc[2] == 0  # a constant slice correlates with nothing


def test_memorisation_flags_copies_and_not_fresh_samples():
    training, _ = blobs(60, seed=8)
    held_out, _ = blobs(60, seed=9)
    copied = memorisation(training[10:40], training, held_out)
    assert copied["share"] == 1 and copied["nearest"].tolist() == list(range(10, 40))
    assert copied["threshold"] < 0.99 and len(copied["held_out_ncc"]) == 60
    fresh = memorisation(blobs(60, seed=10)[0], training, held_out)
    assert fresh["share"] < 0.2 and len(fresh["synthetic_ncc"]) == 60


def test_fine_detail_is_low_for_blur_high_for_speckle_and_one_for_more_of_the_same():
    images, _ = blobs(40, seed=0)
    others, _ = blobs(40, seed=1)
    speckled = images + np.random.default_rng(2).normal(0, 0.3, images.shape)
    assert fine_detail(np.zeros((2, SIZE, SIZE))).tolist() == [0.0, 0.0]
    assert 0.8 < fine_detail_ratio(images, others) < 1.25  # other slices of the same kind
    blurred, grainy = fine_detail_ratio(images, box_blur(images)), fine_detail_ratio(images, speckled)
    assert blurred < DETAIL_BAND[0] and grainy > DETAIL_BAND[1]
    assert "blurred" in detail_verdict(blurred) and "grainier" in detail_verdict(grainy)
    assert detail_verdict(1.0).startswith("within")
    assert detail_is_off(blurred) and detail_is_off(grainy) and not detail_is_off(1.0)
    nothing = fine_detail_ratio(np.zeros((2, SIZE, SIZE)), images)  # constant real slices: no ratio, no verdict
    assert np.isnan(nothing) and not detail_is_off(nothing)
