"""Options shared by the commands (roadseg.cli.options): library defaults, shared checks."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from roadseg.cli import cli
from roadseg.cli.options import (
    TILE_SIZE_ERROR,
    WORKERS_OR_SCHEDULER,
    check_tile_size,
    check_workers_or_scheduler,
    library_value,
)
from roadseg.metrics import DEFAULT_RHO, DEFAULT_THRESHOLD
from roadseg.predict import DEFAULT_BATCH, DEFAULT_OVERLAP
from roadseg.train import PRESETS, TrainConfig


def _help(command: str) -> str:
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_library_value_reads_constants_and_dataclass_fields() -> None:
    assert library_value("roadseg.predict:DEFAULT_OVERLAP") == DEFAULT_OVERLAP
    assert library_value("roadseg.train:TrainConfig.val_steps") == TrainConfig.val_steps


def test_help_shows_the_library_defaults() -> None:
    predict = _help("predict")
    assert f"[default: {DEFAULT_OVERLAP}]" in predict
    assert f"[default: ({DEFAULT_BATCH} on a CPU)]" in predict
    evaluate = _help("evaluate")
    assert f"[default: {DEFAULT_THRESHOLD}]" in evaluate
    assert f"[default: {DEFAULT_RHO};" in evaluate
    train = _help("train")
    assert f"[default: {TrainConfig.val_steps};" in train
    assert f"default preset: {PRESETS['default'].epochs}; paper preset:" in train
    assert f"paper preset: {PRESETS['paper'].steps_per_epoch}" in train


def test_the_group_help_imports_no_library_module() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from roadseg.cli import cli\n"
        "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
        "print([m for m in ('numpy', 'roadseg.predict', 'roadseg.train') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_workers_or_scheduler() -> None:
    check_workers_or_scheduler(2, None)
    check_workers_or_scheduler(None, "tcp://host:8786")
    with pytest.raises(click.BadParameter, match=WORKERS_OR_SCHEDULER):
        check_workers_or_scheduler(2, "tcp://host:8786")


@pytest.mark.parametrize("size", [0, -8, 12, 30])
def test_check_tile_size_refuses(size: int) -> None:
    with pytest.raises(click.BadParameter) as info:
        check_tile_size(size)
    assert info.value.message == TILE_SIZE_ERROR.format(size)


def test_check_tile_size_accepts() -> None:
    for size in (None, 8, 224, 1024):
        check_tile_size(size)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1G", 1 << 30), ("512M", 512 << 20), ("1.5GB", 3 << 29), ("2GiB", 2 << 30), ("4096", 4096)],
)
def test_parse_size(text: str, size: int) -> None:
    from roadseg.cli.options import parse_size

    assert parse_size(text) == size


def test_max_memory_refuses_what_is_not_a_size(tmp_path) -> None:
    result = CliRunner().invoke(
        cli, ["predict", str(tmp_path / "x.tif"), "--max-memory", "lots"], terminal_width=200
    )
    assert result.exit_code == 2
    assert "--max-memory" in result.output and "512M" in result.output
    assert "Traceback" not in result.output
    assert "(1G)" in _help("predict")
