"""``roadseg predict --resume``: a killed run continues and ends identical."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import sigint_default
from test_predict import fake_model, identity

from roadseg.journal import journal_dir
from roadseg.predict import PredictOptions, predict_raster


class _Killed(Exception):
    pass


def _scene(make_geotiff, h: int = 1200, w: int = 300) -> Path:
    rng = np.random.default_rng(5)
    return make_geotiff(rng.integers(0, 255, (3, h, w), dtype=np.uint8), name="big.tif")


def _opts(**kw) -> PredictOptions:
    return PredictOptions(**{"overlap": 16, "batch_size": 4, "resume": True, **kw})


def test_a_failed_run_resumes_computing_only_unfinished_blocks(
    make_geotiff, tmp_path: Path
) -> None:
    src = _scene(make_geotiff)
    mask_ref, mask_out = tmp_path / "ref_mask.tif", tmp_path / "out_mask.tif"
    ref = tmp_path / "ref.tif"
    plain = _opts(resume=False, mask_path=mask_ref)
    predict_raster(src, ref, fake_model(), plain, infer_fn=identity)

    out = tmp_path / "out.tif"
    calls = {"n": 0}

    def dies_midway(batch: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 25:  # past the first 256-row blocks
            raise _Killed
        return identity(batch)

    with pytest.raises(_Killed):
        predict_raster(src, out, fake_model(), _opts(mask_path=mask_out), infer_fn=dies_midway)
    assert not out.exists()
    journal = journal_dir(out)
    assert (journal / "block_000000.tif").exists()

    tiles_seen: list[int] = []

    def counting(batch: np.ndarray) -> np.ndarray:
        tiles_seen.append(len(batch))
        return identity(batch)

    result = predict_raster(src, out, fake_model(), _opts(mask_path=mask_out), infer_fn=counting)
    full = predict_raster(
        src, tmp_path / "again.tif", fake_model(), _opts(resume=False), infer_fn=identity
    ).tiles
    assert 0 < sum(tiles_seen) == result.tiles < full  # only the unfinished part
    assert out.read_bytes() == ref.read_bytes()
    assert mask_out.read_bytes() == mask_ref.read_bytes()
    assert not journal.exists()  # removed once the output is complete


def test_a_journal_of_other_options_is_not_continued(make_geotiff, tmp_path: Path, caplog) -> None:
    src = _scene(make_geotiff)
    out = tmp_path / "out.tif"

    def dies(batch: np.ndarray) -> np.ndarray:
        if dies.n > 25:
            raise _Killed
        dies.n += 1
        return identity(batch)

    dies.n = 0
    with pytest.raises(_Killed):
        predict_raster(src, out, fake_model(), _opts(), infer_fn=dies)
    with caplog.at_level("WARNING", logger="roadseg"):
        predict_raster(src, out, fake_model(), _opts(as_float=True), infer_fn=identity)
    assert "starting over" in caplog.text
    ref = tmp_path / "ref.tif"
    predict_raster(src, ref, fake_model(), _opts(as_float=True, resume=False), infer_fn=identity)
    with rasterio.open(out) as a, rasterio.open(ref) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_a_damaged_block_is_computed_again(make_geotiff, tmp_path: Path, caplog) -> None:
    # What a crash of the machine could leave: a block file cut short.
    src = _scene(make_geotiff)
    ref = tmp_path / "ref.tif"
    predict_raster(src, ref, fake_model(), _opts(resume=False), infer_fn=identity)
    out = tmp_path / "out.tif"
    calls = {"n": 0}

    def dies_midway(batch: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 35:  # past the second 256-row block
            raise _Killed
        return identity(batch)

    with pytest.raises(_Killed):
        predict_raster(src, out, fake_model(), _opts(), infer_fn=dies_midway)
    damaged = journal_dir(out) / "block_000001.tif"
    damaged.write_bytes(damaged.read_bytes()[:100])
    with caplog.at_level("WARNING", logger="roadseg"):
        predict_raster(src, out, fake_model(), _opts(), infer_fn=identity)
    assert "block_000001.tif" in caplog.text and "damaged" in caplog.text
    assert out.read_bytes() == ref.read_bytes()


def test_a_run_without_resume_names_the_journal_then_removes_it(
    make_geotiff, tmp_path: Path, caplog
) -> None:
    src = _scene(make_geotiff)
    out = tmp_path / "out.tif"

    def dies(batch: np.ndarray) -> np.ndarray:
        raise _Killed

    with pytest.raises(_Killed):
        predict_raster(src, out, fake_model(), _opts(), infer_fn=dies)
    assert journal_dir(out).is_dir()  # kept for a later --resume
    with caplog.at_level("WARNING", logger="roadseg"):
        predict_raster(src, out, fake_model(), _opts(resume=False), infer_fn=identity)
    assert "add --resume to continue it" in caplog.text
    assert not journal_dir(out).exists()  # the output it was for is now complete


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory) -> Path:
    from roadseg.model import ModelInfo, build_resunet, save_model

    return save_model(
        build_resunet((None, None, 3), filters=(4, 8, 8, 16)),
        tmp_path_factory.mktemp("m") / "tiny.keras",
        ModelInfo(filters=(4, 8, 8, 16), tile_size=32),
    )


def _one_warning(output: str, *words: str) -> None:
    lines = [line for line in output.splitlines() if line.startswith("Warning:")]
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], output
    assert "Traceback" not in output


def test_cli_says_in_one_line_what_happens_to_a_journal(
    make_geotiff, tiny_model_file: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from roadseg.cli import cli

    src = make_geotiff(np.zeros((3, 64, 64), dtype=np.uint8))
    out = tmp_path / "o.tif"
    args = [str(src), "-o", str(out), "--model", str(tiny_model_file), "--tile-size", "32"]
    args += ["--overlap", "16", "-q"]
    other = journal_dir(out)
    other.mkdir()
    (other / "run.json").write_text('{"input": "another.tif"}')

    result = CliRunner().invoke(cli, ["predict", *args, "--resume"])
    assert result.exit_code == 0, result.output
    _one_warning(result.output, ".o.tif.resume", "another input, model or options", "starting over")
    assert out.exists() and not other.exists()

    other.mkdir()
    result = CliRunner().invoke(cli, ["predict", *args, "--overwrite"])
    assert result.exit_code == 0, result.output
    _one_warning(result.output, ".o.tif.resume", "add --resume")


@pytest.mark.slow
def test_sigterm_then_kill_9_then_resume_gives_the_uninterrupted_output(
    make_geotiff, tiny_model_file: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(9)
    src = make_geotiff(rng.integers(0, 255, (3, 1500, 700), dtype=np.uint8), name="big.tif")

    def cmd(out: Path, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "roadseg", "predict", str(src), "-o", str(out),
            "--model", str(tiny_model_file), "--tile-size", "32", "--overlap", "16",
            "--batch-size", "2", "--quiet", *extra,
        ]  # fmt: skip

    def interrupt_after(out: Path, block: int, sig: signal.Signals) -> int:
        proc = subprocess.Popen(
            cmd(out, "--resume"), stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default
        )
        written = journal_dir(out) / f"block_{block:06d}.tif"
        deadline = time.monotonic() + 300
        while not written.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"predict never wrote block {block}: {proc.stderr.read()}")
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err
        assert not out.exists()
        return proc.returncode

    ref = tmp_path / "ref" / "roads.tif"
    ref.parent.mkdir()
    subprocess.run(cmd(ref), check=True, capture_output=True, timeout=600)

    out = tmp_path / "out" / "roads.tif"
    out.parent.mkdir()
    assert interrupt_after(out, 0, signal.SIGTERM) == 143
    # SIGTERM unwinds: the temporary output is gone, the journal stays.
    assert [p.name for p in out.parent.iterdir()] == [journal_dir(out).name]
    assert interrupt_after(out, 2, signal.SIGKILL) == -signal.SIGKILL

    done = subprocess.run(cmd(out, "--resume"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not journal_dir(out).exists()
