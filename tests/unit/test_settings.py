"""One table of training settings: the flags, the workers' arguments and the resume checks agree."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from tfdock.cli import _train_config, _worker_arguments, build_parser
from tfdock.errors import TfdockError
from tfdock.settings import DEFAULTS, PINNED, SETTINGS
from tfdock.train import TrainConfig

# A value other than the default for each setting, valid on its own.
OTHER_VALUES = {
    "epochs": 3,
    "batch_size": 64,
    "seed": 7,
    "data": "/data/mnist",
    "output_dir": Path("elsewhere"),
    "steps_per_execution": 10,
    "intra_op_threads": 2,
    "inter_op_threads": 0,
    "limit": 1000,
    "deterministic": True,
    "strategy": "mirrored",
    "loop": "fit",
}


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Return `tfdock COMMAND --help` with its lines joined, as one line of words."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_every_setting_has_a_value_to_try():
    """OTHER_VALUES covers the table, so the tests below see every setting."""
    assert set(OTHER_VALUES) == set(SETTINGS)
    assert all(OTHER_VALUES[name] != DEFAULTS[name] for name in SETTINGS)


def test_train_config_has_a_field_per_setting_with_its_default():
    """TrainConfig's fields are the table's rows, and default to the table's defaults."""
    assert {field.name for field in fields(TrainConfig)} == set(SETTINGS)
    assert asdict(TrainConfig()) == DEFAULTS


@pytest.mark.parametrize("name", list(SETTINGS))
def test_each_setting_is_a_flag_of_train_and_of_multiworker_when_workers_get_it(name, capsys):
    """`tfdock train` takes every setting's flag, with its help; `multiworker` those it passes on."""
    setting = SETTINGS[name]
    flags = setting.arguments(OTHER_VALUES[name])
    assert getattr(build_parser().parse_args(["train", *flags]), name) == OTHER_VALUES[name]
    assert getattr(build_parser().parse_args(["train"]), name) is None, "given flags are known"
    assert " ".join(setting.help_text.split()) in _help("train", capsys)
    if setting.workers:
        assert getattr(build_parser().parse_args(["multiworker", *flags]), name) is not None
    else:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["multiworker", *flags])
        assert f"unrecognized arguments: {flags[0]}" in capsys.readouterr().err


def test_help_names_each_default():
    """A setting's help says its default where it has one worth saying."""
    assert SETTINGS["epochs"].help_text == "passes over the training set (default 5)"
    assert SETTINGS["output_dir"].help_text.endswith("(default runs)")
    assert SETTINGS["loop"].help_text.endswith("(default auto)")


def test_worker_arguments_give_a_worker_the_launchers_settings(tmp_path):
    """The flags a local worker gets parse back, with launch.py's --strategy, to the same config."""
    settings = {name: value for name, value in OTHER_VALUES.items() if SETTINGS[name].workers}
    config = TrainConfig(**settings, strategy="multi-worker")
    arguments = _worker_arguments(config, tmp_path / "run")
    worker = build_parser().parse_args(["train", "--strategy", "multi-worker", *arguments])
    assert worker.run_dir == tmp_path / "run"
    assert _train_config(worker) == config
    for name in settings:
        assert SETTINGS[name].flag in arguments


def test_a_multiworker_job_trains_with_the_multi_worker_strategy():
    """`tfdock multiworker` has no --strategy flag: its settings say multi-worker all the same."""
    assert _train_config(build_parser().parse_args(["multiworker"])).strategy == "multi-worker"


def test_worker_arguments_leave_out_what_is_unset():
    """No --data, --limit or --deterministic for a worker when the job has none."""
    arguments = _worker_arguments(TrainConfig(), Path("run"))
    assert not {"--data", "--limit", "--deterministic"} & set(arguments)
    assert arguments[:2] == ["--run-dir", "run"]


def test_the_pinned_settings_are_those_a_resumed_run_promises_to_keep():
    """The settings that change a run's math, as docs/resume.md lists them, are pinned."""
    assert PINNED == ("epochs", "batch_size", "seed", "limit", "deterministic")


def _saved_run(run_dir: Path) -> Path:
    run_dir.mkdir()
    saved = {**asdict(TrainConfig()), "output_dir": "runs"}
    (run_dir / "config.json").write_text(json.dumps(saved))
    return run_dir


@pytest.mark.parametrize("name", [name for name in SETTINGS if name != "output_dir"])
def test_resume_refuses_exactly_the_pinned_settings(tmp_path, name):
    """A resumed run refuses another value of a pinned setting and honours any other setting."""
    run_dir = _saved_run(tmp_path / "run")
    flags = SETTINGS[name].arguments(OTHER_VALUES[name])
    args = build_parser().parse_args(["train", "--resume", str(run_dir), *flags])
    if name in PINNED:
        with pytest.raises(TfdockError, match="a resumed run keeps its settings") as caught:
            _train_config(args)
        assert f"so drop {' '.join(flags)} (or start a new run)." in str(caught.value)
    else:
        assert getattr(_train_config(args), name) == OTHER_VALUES[name]


@pytest.mark.parametrize(
    ("name", "value", "sentence"),
    [
        ("epochs", 0, "--epochs must be a whole number from 1 to 2147483647, not 0."),
        ("batch_size", 60001, "--batch-size must be a whole number from 1 to 60000, not 60001."),
        ("seed", True, "--seed must be a whole number from 0 to 4294967295, not True."),
        ("limit", "5", "--limit must be a whole number from 1 to 60000, not '5'."),
        ("loop", "fast", "--loop must be one of auto, fit, not 'fast'."),
        (
            "strategy",
            "tpu",
            "--strategy must be one of auto, one-device, mirrored, multi-worker, not 'tpu'.",
        ),
        ("deterministic", "yes", "deterministic must be true or false, not 'yes'."),
        ("data", 5, "--data must be a path, not 5."),
    ],
)
def test_a_setting_out_of_its_range_is_one_sentence(name, value, sentence):
    """Settings read from a file are checked against the table's ranges and choices."""
    with pytest.raises(TfdockError) as caught:
        TrainConfig(**{name: value}).validate()
    assert str(caught.value) == sentence
