"""The IBSI MR benchmark's own logic, without training: its goals are judged only on what a run measured, a Dice
difference inside the spread of the runs is called undecided, and options it sets itself are refused before any work.
"""

import argparse
import dataclasses
import subprocess
import sys
import time

import pytest
from ragan_testing import REPOSITORY

sys.path.insert(0, str(REPOSITORY / "benchmarks"))

import ibsi_sts_mr  # noqa: E402


def low_arm_runs() -> list[dict]:
    """Three U-Net seeds of the low arm, one conditional GAN: real-low 0.60 ± 0.02, low+synthetic 0.667 ± 0.031."""
    runs = []
    for seed, (alone, mixed, agreement) in enumerate([(0.60, 0.64, 0.55), (0.62, 0.70, 0.57), (0.58, 0.66, 0.50)]):
        for arm, gan, dice in (("real-low", None, alone), ("agreement low", "conditional", agreement)):
            runs.append({"arm": arm, "gan": gan, "gan_seed": 0, "unet_seed": seed, "mean foreground": dice})
        runs.append({"arm": "low+synthetic", "gan": "conditional", "gan_seed": 0, "unet_seed": seed} | {
            "mean foreground": mixed
        })  # fmt: skip
    return runs


def test_ibsi_goals_judge_only_what_the_run_measured():
    quality = {
        "low": {
            "conditional seed 0": {
                "frechet": 90.0,
                "kid": 50.0,
                "kid_std": 1.0,
                "ms_ssim": 0.3,
                "memorised_share": 0.025,
                "class_shares": {"background": 0.99, "label_1": 0.004},
            },
            "real": {
                "frechet": 5.0,
                "kid": 0.4,
                "kid_std": 0.1,
                "ms_ssim": 0.25,
                "class_shares": {"background": 0.99, "label_1": 0.01},
            },
        }
    }
    args = argparse.Namespace(
        tag="t", setting="cpu", arms="low", modes="conditional", train_option=[], gan_seeds=1, unet_seeds=3,
        first_unet_seed=0, work=None, docs=None, data=None, gan_steps=None, share=50,
    )  # fmt: skip
    cases = {"full": ["case"] * 35, "low": ["case"] * 5, "test": ["case"] * 14}  # names: only their counts matter
    figures = ibsi_sts_mr.results(
        args, ["low"], ["conditional"], {}, cases, 1.7, quality, low_arm_runs(), {}, 3, time.perf_counter()
    )
    verdicts = {goal["goal"]: goal["conditional"] for goal in figures["goals"]}

    assert verdicts["Frechet (own features) of the 35-case GAN <= 60"] == "not measured in this run"
    assert verdicts["synthetic only >= 0.95 x real-full"] == "not measured in this run"
    assert verdicts["5-case GAN memorised <= 2%"] == "not met: 2.50%"
    # 0.667 reaches real-low + 0.06 = 0.660, but by less than the spread (root-sum-square of 0.031 and 0.020).
    gain = verdicts["5 real + synthetic >= real-low + 0.06 (mean over the runs)"]
    assert (
        gain.startswith("met: 0.667 against real-low + 0.06 = 0.660") and "within the spread 0.037: undecided" in gain
    )
    agreement = verdicts["label agreement on the 5-case GAN's slices >= 0.8 x on held-out real"]
    assert agreement == "met: 0.540 against 0.8 x 0.600"
    shares = verdicts["every class of the 5-case GAN >= 0.5 x its training pixel share"]
    assert shares == "not met: lowest: label_1 at 0.40 x its training share"
    assert figures["comparisons"]["low+synthetic"]["conditional"]["verdict"] == "better"  # 0.067 beyond 0.037

    text = ibsi_sts_mr.report(figures, "-t")
    assert "| 5 real cases; with synthetic slices from a GAN on them (half of each batch) | 0.600 ± 0.020 (3) |" in text
    assert "dcgan" not in text  # the full arm did not run: no baseline column

    # One U-Net seed: no spread is known, and neither the comparison nor the goal pretends otherwise.
    one = ibsi_sts_mr.results(args, ["low"], ["conditional"], {}, cases, 1.7, quality, low_arm_runs()[:3], {}, 1, 0.0)
    assert one["comparisons"]["low+synthetic"]["conditional"]["verdict"] == "better, but one run: no spread known"
    one_gain = {goal["goal"]: goal["conditional"] for goal in one["goals"]}[
        "5 real + synthetic >= real-low + 0.06 (mean over the runs)"
    ]
    assert one_gain == "not met: 0.640 against real-low + 0.06 = 0.660 (one run: no spread known)"

    # Before the first U-Net run (the figures written right after the GANs), every Dice goal is not measured yet.
    early = ibsi_sts_mr.results(args, ["low"], ["conditional"], {}, cases, 1.7, quality, [], {}, 0, time.perf_counter())
    early_verdicts = {goal["goal"]: goal["conditional"] for goal in early["goals"]}
    assert early_verdicts["5 real + synthetic >= real-low + 0.06 (mean over the runs)"] == "not measured in this run"
    assert early_verdicts["5-case GAN memorised <= 2%"] == "not met: 2.50%"
    assert "only 0 complete when the run was cut short" in ibsi_sts_mr.report(early, "-t")

    # A second GAN seed run on its own (--first-gan-seed) says which seed its figures are of.
    later = argparse.Namespace(**{**vars(args), "gan_seeds": 2, "first_gan_seed": 1})
    second = ibsi_sts_mr.results(later, ["low"], ["conditional"], {}, cases, 1.7, quality, [], {}, 0, 0.0)
    assert "1 GAN seed(s) (from seed 1)" in ibsi_sts_mr.report(second, "-t") and "1 GAN seed(s)," in text


def test_ibsi_quotes_a_conditional_gans_memorisation_floor_and_no_floor_for_a_joint_one():
    """A conditional GAN's layouts are moved copies of training labels: its memorised share is shown beside the share
    of its layouts' training slices moved alike (docs/benchmark-ibsi-sts-mr-memorisation.md), the goal unchanged."""
    gan = {
        "frechet": 40.0,
        "kid": 8.0,
        "kid_std": 0.2,
        "ms_ssim": 0.35,
        "class_shares": {"background": 0.9, "label_1": 0.1},
    }
    quality = {
        "low": {
            "joint seed 0": gan | {"memorised_share": 0.114, "memorised_floor": None},
            "conditional seed 0": gan | {"memorised_share": 0.289, "memorised_floor": 0.421},
            "real": gan,
        }
    }
    args = argparse.Namespace(
        tag="t", setting="cpu", arms="low", modes="joint,conditional", train_option=[], gan_seeds=1, unet_seeds=3,
        first_unet_seed=0, work=None, docs=None, data=None, gan_steps=1800, share=25,
    )  # fmt: skip
    cases = {"full": ["case"] * 35, "low": ["case"] * 5, "test": ["case"] * 14}
    figures = ibsi_sts_mr.results(args, ["low"], ["joint", "conditional"], {}, cases, 1.7, quality, [], {}, 0, 0.0)
    (memorised,) = [goal for goal in figures["goals"] if goal["goal"] == "5-case GAN memorised <= 2%"]
    assert memorised["joint"] == "not met: 11.40%"
    assert memorised["conditional"] == "not met: 28.90% (its layouts' training slices moved alike: 42.10%)"
    text = ibsi_sts_mr.report(figures, "-t")
    row = "| the 5 low-data cases: memorised share of its layouts' training slices, moved alike | - | - | 42.10% |"
    assert row in text
    # --gan-steps and --share (given here) are in the command line shown and in the table
    assert "--gan-steps 1800 --share 25" in text and "GANs 1800 steps on the 5 low-data cases" in text
    assert "with synthetic slices from a GAN on them (25% of each batch)" in text


def test_ibsi_refuses_a_train_option_it_sets_itself_and_seeds_out_of_order(tmp_path):
    script = REPOSITORY / "benchmarks" / "ibsi_sts_mr.py"
    work = tmp_path / "work"
    command = [sys.executable, str(script), "--train-option", "mode=joint", "--work", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY, timeout=120)
    assert done.returncode == 2
    assert "--train-option cannot set mode" in done.stderr and "--modes" in done.stderr
    seeds = [sys.executable, str(script), "--gan-seeds", "1", "--first-gan-seed", "1", "--work", str(work)]
    done = subprocess.run(seeds, capture_output=True, text=True, cwd=REPOSITORY, timeout=120)
    assert done.returncode == 2 and "--first-gan-seed must be below --gan-seeds" in done.stderr
    assert not work.exists()  # refused before anything is written


def test_controls_name_the_sets_and_the_gan_run_a_work_folder_lacks(tmp_path):
    """benchmarks/controls.py reads a phantom arm's sets by default and the MR benchmark's CSVs when named: a work
    folder without them is refused, naming what it looks for, before any sampling or training."""
    script = REPOSITORY / "benchmarks" / "controls.py"
    (tmp_path / "low.csv").write_text("image,label\n")
    for sets, named in (([], "train-*, held_out-*"), (["--train", "low.csv", "--held-out", "test.csv"], "test.csv")):
        command = [sys.executable, str(script), "--work", str(tmp_path), "--gan", "gan-seed0", *sets]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY, timeout=120)
        assert done.returncode == 2 and named in done.stderr and "gan-seed0/model/" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["low.csv"]


def test_a_gan_run_trained_with_other_options_is_refused_not_passed_off_as_the_new_setting(tmp_path):
    """A benchmark reuses a GAN run by its folder name; one made before a default changed (here the plain generator
    of spec version 3, without the segmenter term of version 5) must not stand in for today's defaults. Nothing
    trains: the check comes first."""
    from common import train_gan

    from RaGANLib.errors import BadInput
    from RaGANLib.spec import OLD_DEFAULTS, TrainSpec

    before = OLD_DEFAULTS[4] | OLD_DEFAULTS[5]
    old = TrainSpec(dataset=str(tmp_path / "cases"), steps=600, **before)
    (tmp_path / "gan-seed0").mkdir()
    old.save(tmp_path / "gan-seed0" / "spec.json")
    written = (tmp_path / "gan-seed0" / "spec.json").read_bytes()
    with pytest.raises(
        BadInput, match="trained with other border_padding, class_intensity, pixel_noise, seg_consistency than"
    ):
        train_gan("gan-seed0", TrainSpec(dataset=str(tmp_path / "cases"), steps=600), tmp_path)
    assert sorted(p.name for p in (tmp_path / "gan-seed0").iterdir()) == ["spec.json"]
    assert (tmp_path / "gan-seed0" / "spec.json").read_bytes() == written
    # A longer request of the same options, the cases named by another path, passes the check and goes on to train
    # (where RaGAN refuses this folder, which it did not make).
    with pytest.raises(BadInput, match="is not an earlier run folder made by RaGAN"):
        train_gan("gan-seed0", TrainSpec(dataset="cases", steps=900, **before), tmp_path)


def test_a_gan_run_longer_than_asked_is_refused_not_reported_as_the_shorter_one(tmp_path):
    """A work folder's run of 1800 steps must not stand in for a request of 600 (its figures would be reported as
    600 steps'): refused, naming both, before anything trains or changes."""
    from common import train_gan
    from test_model_info import INFO

    from RaGANLib.errors import BadInput
    from RaGANLib.model.model_info import write_model_info
    from RaGANLib.spec import TrainSpec

    spec = TrainSpec(dataset=str(tmp_path / "cases"), steps=600)
    (tmp_path / "gan-seed0" / "model").mkdir(parents=True)
    spec.save(tmp_path / "gan-seed0" / "spec.json")
    longer = dataclasses.replace(INFO, training=dataclasses.replace(INFO.training, steps=1800))
    written = write_model_info(tmp_path / "gan-seed0" / "model", longer).read_bytes()
    with pytest.raises(
        BadInput, match="holds a model of 1800 steps, more than the 600 asked for; give --gan-steps 1800"
    ):
        train_gan("gan-seed0", spec, tmp_path)
    assert (tmp_path / "gan-seed0" / "model" / "model.json").read_bytes() == written
    assert sorted(p.name for p in (tmp_path / "gan-seed0").iterdir()) == ["model", "spec.json"]
