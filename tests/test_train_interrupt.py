"""Interrupted training: no half-written model, and --resume picks up the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import sigint_default
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        mask = np.zeros((64, 64), np.uint8)
        mask[rng.integers(5, 50) :][:6] = 1
        mask[:, rng.integers(5, 50) :][:, :6] = 1
        image = rng.normal(60, 12, (64, 64, 3)).clip(0, 255).astype(np.uint8)
        image[mask > 0] = 210
        Image.fromarray(image).save(root / "images" / f"t{i}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"t{i}.png")
    return root


def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "roadseg", "train", "--data", str(data), "-o", str(out),
        "--epochs", "40", "--steps-per-epoch", "4", "--val-steps", "1", "--batch-size", "2",
        "--filters", "16,16,16,16", "--tile-size", "32", "--precision", "float32",
        "--patience", "1000", "--gsd", "0.5", *extra,
    ]  # fmt: skip


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    last = run / "checkpoints" / "last.keras"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if last.exists():
            return  # 39 epochs still to go
        if proc.poll() is not None:
            pytest.fail(f"train ended before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("train never wrote a checkpoint")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signal_mid_training_leaves_no_model_and_resume_finishes(
    sig: signal.Signals, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m.keras"
    run = tmp_path / "m_run"
    proc = subprocess.Popen(
        _train_cmd(dataset, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    _wait_for_checkpoint(run, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}.get(sig, -9), err
    assert "Traceback" not in err
    assert not out.exists()  # the model file appears only when training ends
    if sig != signal.SIGKILL:
        assert _leftovers(tmp_path) == []
        assert _leftovers(run / "checkpoints") == []
    # Every checkpoint on disk is whole: it loads.
    import keras

    import roadseg.losses  # noqa: F401  (registers the loss the checkpoint names)

    keras.saving.load_model(run / "checkpoints" / "last.keras", compile=True)
    if sig != signal.SIGKILL:
        return  # resuming is the same after any of the three; run it once

    resumed = subprocess.run(
        _train_cmd(dataset, out, "--resume"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    from roadseg.model import load_model

    assert load_model(out).info.tile_size == 32
