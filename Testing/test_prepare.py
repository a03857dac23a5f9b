"""Preparation: slices come out on the training grid, in the right orientation, normalised reversibly, with label
values remapped to contiguous classes that keep their names and original values, and the cache is reused."""

import numpy as np
import pytest
from ragan_testing import write_volume

from RaGANLib.data.prepare import Normalisation, load_cache, prepare
from RaGANLib.events import Reporter
from RaGANLib.spec import TrainSpec

QUIET = Reporter(stream=open("/dev/null", "w"))


def marker_case(tmp_path, values=(1,), spacing=(1.0, 1.0, 2.0)):
    """A 16x64x64 volume (z, y, x) whose label marks a block in the superior (high z), anterior (low y),
    right (low x) corner, so orientation mistakes show."""
    image = np.full((16, 64, 64), 100, dtype=np.int16)
    label = np.zeros((16, 64, 64), dtype=np.uint8)
    for offset, value in enumerate(values):
        label[12:16, 4 + offset * 6 : 10 + offset * 6, 4:12] = value
    image[label > 0] = 400
    image[0, 0, 0] = 0  # give the percentiles a range
    return (
        write_volume(tmp_path / "image.nrrd", image, spacing),
        write_volume(tmp_path / "label.nrrd", label, spacing),
    )


def test_axial_slices_keep_geometry_and_only_labelled_slices_by_default(tmp_path):
    image, label = marker_case(tmp_path)
    data = prepare(TrainSpec(pairs=[[str(image), str(label)]], size=64, intensity="ct"), tmp_path / "cache", QUIET)
    assert data.images.shape == (4, 64, 64) and data.labels.shape == (4, 64, 64)
    assert data.meta["spacing"] == [1.0, 1.0] and data.meta["thickness"] == 2.0
    rows, columns = np.nonzero(data.labels[0])
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (4, 9, 4, 11)  # anterior at top, right at left


def test_coronal_slices_show_superior_at_the_top(tmp_path):
    image, label = marker_case(tmp_path, spacing=(1.0, 1.0, 1.0))
    data = prepare(TrainSpec(pairs=[[str(image), str(label)]], size=64, axis="coronal"), tmp_path / "cache", QUIET)
    assert len(data.images) == 6  # rows y = 4..9 hold the marker
    rows, _ = np.nonzero(data.labels[0])
    assert rows.max() < 32, "superior (high z) must be in the upper half"


def test_slice_choice_all_and_empty_ratio(tmp_path):
    image, label = marker_case(tmp_path)
    pair = [[str(image), str(label)]]
    assert len(prepare(TrainSpec(pairs=pair, size=64, slices="all"), tmp_path / "a", QUIET).images) == 16
    assert len(prepare(TrainSpec(pairs=pair, size=64, empty_ratio=0.5), tmp_path / "b", QUIET).images) == 6


def test_smaller_case_is_centred_and_padded_on_the_common_grid(tmp_path):
    big = marker_case(tmp_path / "big")
    small_image = np.full((4, 32, 32), 300, dtype=np.int16)
    small_image[0, 0, 0] = 0
    small_label = np.ones((4, 32, 32), dtype=np.uint8)
    small = (
        write_volume(tmp_path / "small_image.nrrd", small_image, (1.0, 1.0, 2.0)),
        write_volume(tmp_path / "small_label.nrrd", small_label, (1.0, 1.0, 2.0)),
    )
    spec = TrainSpec(pairs=[[str(p) for p in big], [str(p) for p in small]], size=64, intensity="ct")
    data = prepare(spec, tmp_path / "cache", QUIET)
    padded = np.asarray(data.labels[-1])
    rows, columns = np.nonzero(padded)
    assert rows.min() == 16 and rows.max() == 47 and columns.min() == 16 and columns.max() == 47
    assert float(data.images[-1][0, 0]) == -1.0  # background outside the small case


def test_ct_window_round_trip_and_mr_percentiles():
    window = Normalisation(-1000.0, 1000.0)
    values = np.array([-1000.0, -300.0, 0.0, 40.0, 999.0])
    assert np.allclose(window.inverse(window.forward(values)), values, atol=1e-6)
    assert window.forward(np.array([-3000.0, 3000.0])).tolist() == [-1.0, 1.0]
    # float16 in the cache keeps CT values within about 1 HU over the default window
    stored = window.forward(values).astype(np.float16)
    assert np.max(np.abs(window.inverse(stored) - values)) < 1.0


def test_labels_remapped_to_contiguous_classes_keep_names_and_values(tmp_path):
    image, label = marker_case(tmp_path, values=(7, 9))
    spec = TrainSpec(pairs=[[str(image), str(label)]], size=64, label_names={"9": "tumour"})
    data = prepare(spec, tmp_path / "cache", QUIET)
    assert [(c["index"], c["value"], c["name"]) for c in data.classes] == [
        (0, 0, "background"),
        (1, 7, "label_7"),
        (2, 9, "tumour"),
    ]
    assert set(np.unique(data.labels)) == {0, 1, 2}


def test_cache_is_reused_without_reading_the_inputs_again(tmp_path):
    image, label = marker_case(tmp_path)
    spec = TrainSpec(pairs=[[str(image), str(label)]], size=64)
    first = prepare(spec, tmp_path / "cache", QUIET)
    image.unlink()
    label.unlink()
    again = prepare(spec, tmp_path / "cache", QUIET)
    assert np.array_equal(first.images, again.images)
    assert load_cache(tmp_path / "cache", TrainSpec(pairs=spec.pairs, size=128), QUIET) is None


PYRADIOMICS = {
    "brain1": ("brain1_image.nrrd", "brain1_label.nrrd"),
    "prostate_phantom_subvolume": ("prostate_phantom_subvolume.nrrd", "prostate_phantom_subvolume-label.nrrd"),
}


@pytest.mark.parametrize("name", sorted(PYRADIOMICS))
def test_real_pyradiomics_cases_prepare(tmp_path, name):
    from ragan_testing import shared_case_folder

    folder = shared_case_folder("pyradiomics-cases")
    image, label = PYRADIOMICS[name]
    image, label = folder / image, folder / label
    data = prepare(TrainSpec(pairs=[[str(image), str(label)]], size=64), tmp_path / "cache", QUIET)
    assert data.images.shape[1:] == (64, 64) and len(data.images) > 0
    if name == "prostate_phantom_subvolume":
        assert [c["value"] for c in data.classes] == [0, 1, 7, 8, 9]
