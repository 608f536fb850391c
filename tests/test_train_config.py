"""`accelerated.config` and the `accelerated.train` command line: help, overrides, bad input."""

import subprocess
import sys
import tomllib

import pytest

from accelerated import config as C
from accelerated import train


def test_help_lists_every_field_with_default_and_doc(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    squeezed = "".join(text.split())  # argparse wraps lines, also after hyphens
    for info in C.fields_of():
        assert f"--{info.path}" in text
        assert info.doc and "".join(info.doc.split()) in squeezed, info.path
    assert "(default: 0.0004; builtin preset: 0.0008)" in text  # optim.lr_d
    assert "builtin preset: 16" in text  # model.resolution under the default preset


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--optim.lr"], "unrecognized arguments"),
        (["--optim.lr_d", "fast"], "optim.lr_d: expected float, got 'fast'"),
        (["--run.steps", "1.5"], "run.steps: expected int"),
        (["--optim.ema", "maybe"], "optim.ema: expected bool"),
        (["--model.resolution", "48"], "resolution=48 has no architecture table"),
        (["--run.steps", "0"], "run.steps must be at least 1"),
        (["--optim.beta2", "1.0"], "must lie in [0, 1)"),
        (["--run.eval_samples", "100000000"], "run.eval_samples 100000000 is more than"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--config", "/nonexistent.toml"], "does not exist"),
    ],
)
def test_bad_command_line_is_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    assert train.main([*argv, "--run.out_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing was created


def test_bad_config_file_key(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("[optim]\nlr_dd = 1e-4\n")
    assert train.main(["--config", str(tmp_path / "bad.toml")]) == 2
    assert "unknown key 'optim.lr_dd' (did you mean 'optim.lr_d'?)" in capsys.readouterr().err
    (tmp_path / "bad2.toml").write_text("[optimiser]\nlr_d = 1e-4\n")
    assert train.main(["--config", str(tmp_path / "bad2.toml")]) == 2
    assert "unknown section [optimiser]" in capsys.readouterr().err
    (tmp_path / "bad3.toml").write_text("[optim\n")
    assert train.main(["--config", str(tmp_path / "bad3.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_layers_override_in_order_and_round_trip_through_toml(tmp_path):
    (tmp_path / "mine.toml").write_text(
        "[model]\ng_ch = 12\ng_attention = [8]\n[optim]\nlr_d = 2e-4\nbeta2 = 0.9\n"
    )
    cfg = C.build("builtin", str(tmp_path / "mine.toml"), {"optim.lr_d": "3e-4", "run.name": "x"})
    assert cfg.model.resolution == 16  # from the preset
    assert cfg.model.g_ch == 12 and cfg.model.g_attention == (8,)  # from the file
    assert cfg.optim.beta2 == 0.9  # from the file
    assert cfg.optim.lr_d == 3e-4  # the command line wins over the file
    assert cfg.optim.lr_g == 2e-4  # from the preset
    assert cfg.optim.eps == C.OptimConfig().eps  # untouched default
    assert C.from_dict(tomllib.loads(C.to_toml(cfg))) == cfg
    # The written TOML works as a --config file on its own.
    (tmp_path / "all.toml").write_text(C.to_toml(cfg))
    assert C.build(None, str(tmp_path / "all.toml")) == cfg


def test_every_preset_is_a_valid_config():
    assert {"builtin", "imagenet128", "64", "32", "tiny"} <= set(C.preset_names())
    for name in C.preset_names():
        C.validate(C.build(name))
    big = C.build("imagenet128")
    assert (big.model.resolution, big.optim.batch_size, big.model.g_ch) == (128, 256, 64)
    assert (big.optim.lr_d, big.optim.lr_g, big.optim.beta1) == (4e-4, 1e-4, 0.0)


def test_batch_must_divide_by_world_size():
    cfg = C.build("tiny", overrides={"optim.batch_size": "10"})
    C.validate(cfg, world_size=2)
    with pytest.raises(C.ConfigError, match="does not divide by the 3 ranks"):
        C.validate(cfg, world_size=3)


def test_cli_process_exit_status_without_traceback():
    out = subprocess.run([sys.executable, "-m", "accelerated.train", "--optim.d_steps", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == ("python -m accelerated.train: error: "
                                  "optim.d_steps must be at least 1")


def test_no_arguments_means_the_builtin_preset():
    cfg, resume_dir = train.build_config(train.make_parser().parse_args([]))
    assert resume_dir is None and cfg == C.build("builtin")
    assert cfg.data.source == "builtin" and cfg.model.resolution <= 32


def test_a_config_file_that_never_ends_is_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# a comment\n" * 100_000)  # valid TOML, but no config is 1 MB
    for path in (big, "/dev/zero"):
        with pytest.raises(C.ConfigError, match="larger than 1048576 bytes"):
            C.load_toml(path)
