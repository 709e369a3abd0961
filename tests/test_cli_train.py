"""``roadseg train``: options, --check, bad data messages and a tiny run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from roadseg.cli import cli
from roadseg.model import read_model_info

ROAD = (110, 193, 228)


def write_pairs(root: Path, n: int = 4, size: int = 64, colour: bool = False) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image = rng.normal(60, 12, (size, size, 3)).clip(0, 255).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[10 + 5 * i : 16 + 5 * i] = 1
        mask[:, 30:36] = 1
        image[mask > 0] = 210
        Image.fromarray(image).save(root / "images" / f"img {i}.png")
        if colour:
            rgb = np.empty((size, size, 3), np.uint8)
            rgb[...] = (132, 41, 246)
            rgb[:4] = (254, 221, 58)
            rgb[mask > 0] = ROAD
            Image.fromarray(rgb).save(root / "masks" / f"img {i}.png")
        else:
            Image.fromarray(mask * 255).save(root / "masks" / f"img {i}.png")
    return root


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["train", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_help_teaches_layouts_and_examples() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for text in ("DeepGlobe", "Massachusetts", "SpaceNet", "images/ + masks/", "--init default"):
        assert text in out


def test_check_lists_what_it_found(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "d")
    code, out, _ = run("--data", str(data), "--check", "--tile-size", "32")
    assert code == 0
    assert "image/mask folders" in out and "ready to train" in out
    assert "3 train, 1 validation" in out
    assert not list(tmp_path.glob("*.keras"))


def test_check_names_the_colours_of_multiclass_masks(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "d", colour=True)
    code, out, err = run("--data", str(data), "--check")
    assert code == 1
    assert "(110,193,228)" in out and "--road-color" in out
    assert err.startswith("Error: 1 problem(s)")
    code, out, _ = run("--data", str(data), "--check", "--road-color", "#6EC1E4")
    assert code == 0 and "RGB (110,193,228)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filters", "8,16"], "needs 4 values"),
        (["--tile-size", "30"], "multiple of 8"),
        (["--road-color", "1,2,3", "--road-value", "2"], "not both"),
        (["--road-color", "300,0,0"], "0-255"),
        (["--precision", "int8"], "int8"),
        (["--init", "missing.keras"], "does not exist"),
        (["-o", "model.h5"], "must end in .keras"),
        (["--gsd-range", "0.3"], "two numbers LO,HI"),
        (["--gsd-range", "1.2,0.3"], "0 < LO <= HI"),
        (["--normalization", "zscore"], "zscore"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = run("--data", str(tmp_path), *args)
    assert code == 2
    assert message in err


def test_data_is_required() -> None:
    code, _, err = run()
    assert code == 2 and "--data DIR is required" in err


def test_bad_data_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run("--data", str(tmp_path / "empty"), "-o", str(tmp_path / "m.keras"))
    assert code == 1 and "is empty" in err and "Traceback" not in err

    data = write_pairs(tmp_path / "d")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(data / "images" / "orphan.png")
    code, _, err = run("--data", str(data), "-o", str(tmp_path / "m.keras"))
    assert code == 1
    assert err.count("\n") == 1 and "1 image(s) have no label: images/orphan.png" in err


@pytest.mark.slow
def test_tiny_training_run_writes_a_model(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "d")
    out = tmp_path / "tiny.keras"
    args = [
        "--data", str(data), "-o", str(out), "--filters", "16,16,16,16", "--tile-size", "32",
        "--epochs", "1", "--steps-per-epoch", "2", "--val-steps", "1", "--batch-size", "2",
        "--precision", "float32", "--gsd", "0.3",
    ]  # fmt: skip
    code, _, err = run(*args)
    assert code == 0, err
    assert "epoch 1/1" in err and f"Wrote {out}" in err and "Validation (2 crops)" in err
    info = read_model_info(out)
    assert info is not None and info.gsd == 0.3 and info.filters == (16, 16, 16, 16)
    assert (tmp_path / "tiny_run" / "checkpoints" / "best.keras").is_file()

    code, _, err = run(*args)
    assert code == 1 and "holds a finished run" in err
