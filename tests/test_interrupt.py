"""Interrupted runs leave either nothing or a complete file at the output path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import sigint_default

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory) -> Path:
    from roadseg.model import ModelInfo, build_resunet, save_model

    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    return save_model(model, path, ModelInfo(filters=(4, 8, 8, 16), tile_size=32))


def _start_predict(src: Path, out: Path, model: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "roadseg", "predict", str(src), "-o", str(out), "--model", str(model),
        "--tile-size", "32", "--overlap", "16", "--batch-size", "1", "--quiet",
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default
    )


def _wait_for_temp(folder: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.name.startswith(".") for p in folder.iterdir()):
            time.sleep(0.5)  # well inside the tile loop
            return
        if proc.poll() is not None:
            pytest.fail(f"predict ended before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("predict never started writing")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signal_mid_predict(sig, make_geotiff, rgb_array, tiny_model_file, tmp_path) -> None:
    src = make_geotiff(rgb_array(1500, 1500), name="big.tif")
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "roads.tif"
    proc = _start_predict(src, out, tiny_model_file)
    _wait_for_temp(outdir, proc)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not out.exists()
    assert "Traceback" not in err
    if sig != signal.SIGKILL:
        # Clean unwinding: temporary files are gone too.
        assert list(outdir.iterdir()) == []


def test_uninterrupted_run_completes(make_geotiff, tiny_model_file, tmp_path) -> None:
    src = make_geotiff(np.zeros((3, 64, 64), dtype=np.uint8))
    out = tmp_path / "o.tif"
    proc = _start_predict(src, out, tiny_model_file)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.exists()
