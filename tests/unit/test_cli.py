"""The CLI: instant help, and user errors as one sentence with no traceback."""

from __future__ import annotations

import re
import sys

import pytest

from tests.commands import run, tfdock
from tfdock.cli import build_parser, main

COMMANDS = (
    "train",
    "multiworker",
    "task",
    "k8s",
    "verify",
    "lab",
    "lab-health",
    "tensorboard",
    "lock",
    "container-check",
    "lock-check",
)


def test_help_is_instant_and_does_not_import_tensorflow():
    """`tfdock --help` lists every command without loading TensorFlow or Keras."""
    result = run([sys.executable, "-X", "importtime", "-m", "tfdock", "--help"])
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"^    ([a-z][-a-z0-9]*)", result.stdout, re.M)
    assert listed == list(COMMANDS)
    # -X importtime writes one line per module imported: "import time: self | cumulative | name".
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and not line.endswith("imported package")
    ]
    assert "tfdock.cli" in imported, "the probe sees the CLI's own imports"
    heavy = sorted({name for name in imported if name.split(".")[0] in ("tensorflow", "keras")})
    assert heavy == []


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_names_the_handler_that_runs_it(command):
    """Each subcommand, parsed, carries the function that runs it (main calls it, no if-chain)."""
    handler = build_parser().parse_args([command]).handler
    assert handler.__name__ == "_" + command.replace("-", "_")


def _documented_synopsis(repo_root) -> dict[str, set[str]]:
    """Each command's flags as docs/cli.md's synopsis block writes them."""
    block = (repo_root / "docs" / "cli.md").read_text().split("```")[1]
    flags: dict[str, set[str]] = {}
    command = ""
    for line in block.strip().splitlines():
        if line.startswith("tfdock "):
            command = line.split()[1]
        flags.setdefault(command, set()).update(re.findall(r"--[a-z][-a-z]*", line))
    return flags


def _parser_flags(command: str) -> set[str]:
    subcommands = next(
        action for action in build_parser()._actions if action.dest == "command"
    ).choices
    options = (a.option_strings for a in subcommands[command]._actions)
    return {flag for strings in options for flag in strings if flag.startswith("--")} - {"--help"}


def test_the_cli_page_lists_each_commands_own_flags(repo_root):
    """docs/cli.md's synopsis names every command and exactly the flags its parser takes."""
    documented = _documented_synopsis(repo_root)
    assert sorted(documented) == sorted(COMMANDS)
    for command in COMMANDS:
        assert documented[command] == _parser_flags(command), command


def test_missing_data_is_one_sentence(tmp_path):
    """Training with a data path that does not exist exits 2 with one line and no traceback."""
    result = tfdock(
        "train", "--data", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "runs")
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"tfdock: error: MNIST data not found at {tmp_path / 'nope'}: pass --data PATH (or set "
        "TFDOCK_DATA) to a local mnist.npz or to a folder holding the four official MNIST .gz "
        "files, or leave both unset to download it."
    ]
    assert not (tmp_path / "runs").exists(), "nothing is written when the data is bad"


@pytest.mark.parametrize(
    ("command", "flag", "value", "bounds"),
    [
        ("train", "--epochs", "0", "from 1 to 2147483647"),
        ("train", "--batch-size", "0", "from 1 to 60000"),
        ("train", "--batch-size", "2147483648", "from 1 to 60000"),
        ("train", "--steps-per-execution", "0", "from 1 to 2147483647"),
        ("train", "--steps-per-execution", "2147483648", "from 1 to 2147483647"),
        ("train", "--seed", "-1", "from 0 to 4294967295"),
        ("train", "--seed", "99999999999999", "from 0 to 4294967295"),
        ("train", "--intra-op-threads", "-3", "from 0 to 1024"),
        ("train", "--inter-op-threads", "-1", "from 0 to 1024"),
        ("train", "--intra-op-threads", "100000", "from 0 to 1024"),
        ("train", "--limit", "0", "from 1 to 60000"),
        ("multiworker", "--workers", "100000", "from 1 to 32"),
        ("multiworker", "--seed", "-1", "from 0 to 4294967295"),
    ],
)
def test_numbers_out_of_range_are_refused_before_anything_runs(
    command, flag, value, bounds, tmp_path, capsys
):
    """Each numeric flag is checked against its range by argparse: named, and no folder made."""
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as caught:
        main([command, flag, value, "--output-dir", str(runs)])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {flag}: expected a whole number {bounds}, got {value}" in error
    assert "Traceback" not in error
    assert not runs.exists()


def test_limit_smaller_than_a_batch_is_refused(tmp_path, mnist_dir, capsys):
    """--limit below one batch is a user error, reported before training starts."""
    code = main(["train", "--data", str(mnist_dir), "--limit", "10", "--output-dir", str(tmp_path)])
    assert code == 2
    assert "--limit 10 is smaller than one batch (32)" in capsys.readouterr().err


def test_verify_without_lock_is_one_sentence(tmp_path):
    """`tfdock verify` outside the repository says where the lock is expected."""
    # Without the image's own lock, which the kit's images (and so `make check` in a dev
    # container) name in TFDOCK_LOCK.
    result = tfdock("verify", cwd=tmp_path, env={"TFDOCK_LOCK": None})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the lock requirements.txt does not exist" in result.stderr


def test_lock_check_passes_on_the_committed_lock(repo_root):
    """`tfdock lock-check --offline` accepts the committed pair (test_packaging.py recompiles it)."""
    result = tfdock("lock-check", "--offline", cwd=repo_root)
    assert result.returncode == 0, result.stderr
    assert "requirements.txt matches requirements.in" in result.stdout


def test_lock_check_fails_on_drift(repo_root, tmp_path):
    """`tfdock lock-check` exits 1 naming the drift and the fix."""
    (tmp_path / "requirements.in").write_text(
        (repo_root / "requirements.in").read_text() + "scikit-learn\n"
    )
    (tmp_path / "requirements.txt").write_text((repo_root / "requirements.txt").read_text())
    result = tfdock("lock-check", cwd=tmp_path)
    assert result.returncode == 1
    assert "scikit-learn is in requirements.in but not pinned" in result.stderr
    assert "run `make lock`" in result.stderr
