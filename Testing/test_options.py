"""TrainSpec is the one table of training options: `ragan train`'s flags, their help and the presets are read from
it, and every numeric option is refused outside the range it declares, by the flag's name."""

import dataclasses

import pytest

from RaGANLib import __version__, cli
from RaGANLib.errors import BadInput
from RaGANLib.spec import OPTIONS, PRESETS, TrainSpec, describe_option, flag_of


def train_help() -> dict[str, str]:
    """`ragan train --help` by flag: the help argparse holds for each option."""
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    return {flag: action.help for action in train._actions for flag in action.option_strings}


def spec_of(*argv) -> TrainSpec:
    return cli.spec_from_arguments(cli.build_parser().parse_args(["train", "--pair", "a.nrrd", "b.nrrd", *argv]))


def test_every_option_flag_states_the_default_and_range_the_spec_has():
    shown = train_help()
    flagged = [n for n, field in OPTIONS.items() if field.metadata["flag"] and not isinstance(field.default, bool)]
    assert len(flagged) >= 20
    for name in flagged:
        text = shown[flag_of(name)]
        field = OPTIONS[name]
        assert text == describe_option(name)
        assert f"default {field.metadata['default_text'] or field.default})" in text, text
        rule = field.metadata["rule"] or {}
        if "low" in rule and "high" in rule:
            assert f"{rule['low']}..{rule['high']}" in text, text
    assert shown["--size"] == "training slice size in pixels (64..512, a multiple of 16; default 128)"


def test_every_true_false_option_with_a_flag_is_a_switch_that_sets_it_and_its_opposite_clears_it():
    """A true/false option is one edit in spec.py: its flag is a switch without a value, whose help is the spec's,
    with a `--no-` opposite (needed where the default is true)."""
    switches = [n for n, field in OPTIONS.items() if field.metadata["flag"] and isinstance(field.default, bool)]
    assert {"multi_gpu", "mixed_precision", "xla", "pixel_noise"} <= set(switches)
    assert "smooth_labels" not in switches, "a true/false option without a flag gets none"
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    actions = {flag: action for action in train._actions for flag in action.option_strings}
    assert "--smooth-labels" not in actions
    for name in switches:
        action, opposite = actions[flag_of(name)], "--no-" + flag_of(name)[2:]
        default = "on" if OPTIONS[name].default else "off"
        assert action.nargs == 0 and action.help == f"{OPTIONS[name].metadata['help']} (default {default})", name
        assert actions[opposite] is action, name
        assert getattr(spec_of(), name) is OPTIONS[name].default, name
        assert getattr(spec_of(flag_of(name)), name) is True and getattr(spec_of(opposite), name) is False, name
        others = [getattr(spec_of(flag_of(other)), name) for other in switches if other != name]
        assert others == [OPTIONS[name].default] * len(others), "it sets only itself"
    assert spec_of().pixel_noise is True and spec_of("--no-pixel-noise").pixel_noise is False


def test_a_preset_sets_what_the_panels_preset_sets_and_flags_beside_it_win():
    standard = spec_of("--preset", "standard")
    assert {name: getattr(standard, name) for name in PRESETS["standard"]} == {"size": 128, "steps": 4000, "batch": 16}
    quick = spec_of("--preset", "quick look", "--size", "128")
    assert (quick.size, quick.steps, quick.batch) == (128, 600, 8)
    plain = spec_of()
    assert (plain.size, plain.steps, plain.batch) == (128, 2000, 16), "without --preset the spec's defaults"
    with pytest.raises(SystemExit):
        spec_of("--preset", "huge")


@pytest.mark.parametrize("name", [name for name, field in OPTIONS.items() if field.metadata["rule"]])
def test_every_numeric_option_is_refused_outside_its_declared_range_by_its_flag(name):
    rule = OPTIONS[name].metadata["rule"]
    spec = TrainSpec(pairs=[["a.nrrd", "b.nrrd"]])
    outside = [rule["low"] - 1] if "low" in rule else [rule["above"]] if "above" in rule else []
    outside += [rule["high"] + 1] if "high" in rule else []
    outside += [float("nan")] + ([1.5] if rule.get("whole") else [])
    for value in outside:
        with pytest.raises(BadInput, match=rf"^options: {cli.FLAGS.get(name, name)} must be .*, got"):
            dataclasses.replace(spec, **{name: value}).validate("options", cli.FLAGS)
    dataclasses.replace(spec, **{name: OPTIONS[name].default}).validate("options", cli.FLAGS)


def test_version_flag_prints_the_installed_version_and_exits_zero(capsys):
    """`ragan --version`: the version the package (and pyproject.toml) declares."""
    with pytest.raises(SystemExit) as stopped:
        cli.build_parser().parse_args(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"ragan {__version__}"
