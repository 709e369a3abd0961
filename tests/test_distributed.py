"""Many rasters in-process and on Dask (roadseg.distributed).

The Dask tests share one LocalCluster of 2 worker processes (one thread each)
and skip when dask[distributed] is not installed. Their outputs are compared
byte for byte with in-process outputs of the same jobs.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from roadseg.batch import Job, plan_jobs
from roadseg.distributed import (
    JobResult,
    ModelRef,
    predict_job,
    predict_region_job,
    run_jobs,
    thread_env,
    threads_per_process,
)
from roadseg.errors import OutputError
from roadseg.predict import PredictOptions

OPTIONS = PredictOptions(overlap=16, batch_size=4)
NAMES = ("s0", "s1", "s2")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from roadseg.model import ModelInfo, build_resunet, save_model

    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    return save_model(model, path, ModelInfo(filters=(4, 8, 8, 16), tile_size=64))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small RGB GeoTIFFs of different sizes, one with nodata."""
    folder = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(5)
    for k, name in enumerate(NAMES):
        data = rng.integers(0, 256, (3, 90 + 20 * k, 120), dtype=np.uint8)
        data[:, :5, :9] = 0
        with rasterio.open(
            folder / f"{name}.tif", "w", driver="GTiff", width=120, height=data.shape[1],
            count=3, dtype="uint8", crs="EPSG:32633", nodata=0,
            transform=Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0),
        ) as dst:  # fmt: skip
            dst.write(data)
    return folder


def jobs_into(scenes: Path, out: Path) -> list[Job]:
    out.mkdir(exist_ok=True)
    return plan_jobs([str(scenes / "*.tif")], output_dir=out, mask_name="{stem}_mask.tif")


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def reference(scenes: Path, tiny_model: Path, tmp_path_factory) -> dict[str, bytes]:
    """The in-process outputs of every scene."""
    out = tmp_path_factory.mktemp("reference")
    result = run_jobs(jobs_into(scenes, out), tiny_model, OPTIONS)
    assert [r.status for r in result.results] == ["predicted"] * 3
    assert result.where == "in-process"
    found = files(out)
    assert len(found) == 6
    return found


# --------------------------------------------------------------------------- in-process


def test_rerun_in_process_skips_finished_outputs(scenes, tiny_model, reference, tmp_path):
    jobs = jobs_into(scenes, tmp_path)
    run_jobs(jobs, tiny_model, OPTIONS)
    assert files(tmp_path) == reference
    (tmp_path / "s1_roads.tif").unlink()
    again = run_jobs(jobs, tiny_model, OPTIONS)
    assert [r.status for r in again.results] == ["skipped", "predicted", "skipped"]
    assert again.tiles > 0
    assert files(tmp_path) == reference


def test_other_options_are_not_taken_for_done(scenes, tiny_model, reference, tmp_path):
    jobs = jobs_into(scenes, tmp_path)
    run_jobs(jobs, tiny_model, OPTIONS)
    other = PredictOptions(overlap=8, batch_size=4)
    with pytest.raises(OutputError, match="already exist from another model or other options"):
        run_jobs(jobs, tiny_model, other)
    replaced = run_jobs(jobs, tiny_model, PredictOptions(overlap=8, batch_size=4, overwrite=True))
    assert {r.status for r in replaced.results} == {"predicted"}
    with rasterio.open(tmp_path / "s0_roads.tif") as ds:
        assert ds.tags()["ROADSEG_OVERLAP"] == "8"


def _fail_on(name: str, job: Job, *args) -> JobResult:
    if job.input.stem == name:
        raise RuntimeError(f"{name} broke")
    return predict_job(job, *args)


def test_in_process_failure_is_retried_reported_and_resumed(
    scenes, tiny_model, reference, tmp_path
):
    jobs = jobs_into(scenes, tmp_path)
    result = run_jobs(jobs, tiny_model, OPTIONS, retries=1, task=functools.partial(_fail_on, "s1"))
    assert [r.status for r in result.results] == ["predicted", "failed", "predicted"]
    assert result.results[1].error == "s1 broke"
    again = run_jobs(jobs, tiny_model, OPTIONS)
    assert [r.status for r in again.results] == ["skipped", "predicted", "skipped"]
    assert files(tmp_path) == reference


def test_threads_share_the_cores() -> None:
    assert threads_per_process(1) >= threads_per_process(2) >= 1
    assert threads_per_process(10**6) == 1
    env = thread_env(3)
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert env["GDAL_NUM_THREADS"] == "3"
    assert env["TF_NUM_INTEROP_THREADS"] == "1"


def test_model_is_checked_before_any_work(scenes, tmp_path) -> None:
    from roadseg.errors import ModelError

    with pytest.raises(ModelError, match="does not exist"):
        run_jobs(jobs_into(scenes, tmp_path), tmp_path / "none.keras", OPTIONS)
    assert list(tmp_path.iterdir()) == []
    assert ModelRef.of(None).path.name == "roadseg_default.keras"


# --------------------------------------------------------------------------- on Dask


@pytest.mark.slow
def test_cluster_outputs_are_identical_and_reruns_skip(
    scenes, tiny_model, reference, scheduler, tmp_path
):
    jobs = jobs_into(scenes, tmp_path)
    result = run_jobs(jobs, tiny_model, OPTIONS, scheduler=scheduler)
    assert [r.status for r in result.results] == ["predicted"] * 3
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert all(r.worker and r.worker != here for r in result.results)
    assert files(tmp_path) == reference
    (tmp_path / "s2_mask.tif").unlink()
    again = run_jobs(jobs, tiny_model, OPTIONS, scheduler=scheduler)
    assert [r.status for r in again.results] == ["skipped", "skipped", "predicted"]
    assert files(tmp_path) == reference


def _kill_when_writing(job: Job, mark: Path) -> threading.Thread:
    """A thread that kills this process once a temporary output of ``job`` appears."""

    def watch() -> None:
        while True:
            if list(job.output.parent.glob(f".{job.output.stem}.*.tmp*")):
                mark.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.001)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _kill_once(marks: Path, job: Job, *args) -> JobResult:
    """Kill this worker process once before s0, while s2 is written, after s1 is written."""
    before, during, after = marks / "killed-before", marks / "killed-during", marks / "killed-after"
    if job.input.stem == "s0" and not before.exists():
        before.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if job.input.stem == "s2" and not during.exists():
        _kill_when_writing(job, during)
    result = predict_job(job, *args)
    if result.status == "predicted":
        with open(marks / "predicted.log", "a") as log:
            log.write(f"{job.input.stem}\n")
    if job.input.stem == "s1" and not after.exists():
        after.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return result


@pytest.mark.slow
def test_a_killed_worker_loses_and_duplicates_nothing(
    scenes, tiny_model, reference, scheduler, tmp_path
):
    out, marks = tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    jobs = jobs_into(scenes, out)
    task = functools.partial(_kill_once, marks)
    result = run_jobs(jobs, tiny_model, OPTIONS, scheduler=scheduler, task=task)
    assert {p.name for p in marks.iterdir()} >= {"killed-before", "killed-during", "killed-after"}
    statuses = [r.status for r in result.results]
    # s1's first attempt wrote its outputs and died; its second attempt found them.
    assert statuses == ["predicted", "skipped", "predicted"]
    assert sorted((marks / "predicted.log").read_text().split()) == list(NAMES)
    # Nothing missing, and no temporary file of s2's killed attempt left.
    assert files(out) == reference


def _fail_s1(job: Job, *args) -> JobResult:
    if job.input.stem == "s1":
        raise RuntimeError("s1 broke")
    return predict_job(job, *args)


@pytest.mark.slow
def test_cluster_failure_is_reported_and_a_rerun_does_only_what_is_left(
    scenes, tiny_model, reference, scheduler, tmp_path
):
    jobs = jobs_into(scenes, tmp_path)
    result = run_jobs(jobs, tiny_model, OPTIONS, scheduler=scheduler, retries=1, task=_fail_s1)
    assert [r.status for r in result.results] == ["predicted", "failed", "predicted"]
    assert result.results[1].error == "s1 broke"
    again = run_jobs(jobs, tiny_model, OPTIONS, scheduler=scheduler)
    assert [r.status for r in again.results] == ["skipped", "predicted", "skipped"]
    assert files(tmp_path) == reference


@pytest.mark.slow
def test_cli_batch_on_two_local_workers(scenes, tiny_model, reference, tmp_path, capsys):
    pytest.importorskip("distributed")
    from roadseg.cli.batch import run_batch

    out = tmp_path / "new" / "out"
    run_batch(
        [str(scenes / "s0.tif"), f"{scenes}/s[12].tif"],
        options=OPTIONS,
        model=str(tiny_model),
        output_dir=str(out),
        mask="{stem}_mask.tif",
        workers=2,
    )
    assert files(out) == reference
    assert "Predicted 3 of 3 rasters" in capsys.readouterr().err
    run_batch([f"{scenes}/*.tif"], options=OPTIONS, model=str(tiny_model), output_dir=str(out),
              mask="{stem}_mask.tif", workers=2)  # fmt: skip
    assert "Predicted 0 of 3 rasters; 3 already done" in capsys.readouterr().err


# --------------------------------------------------------------------------- one raster split


@pytest.fixture(scope="module")
def tall(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raster of 1100 rows: three regions of 512 rows, five 256-row blocks."""
    folder = tmp_path_factory.mktemp("tall")
    rng = np.random.default_rng(8)
    data = rng.integers(0, 256, (3, 1100, 120), dtype=np.uint8)
    data[:, 500:530, :30] = 0  # nodata across a region edge
    with rasterio.open(
        folder / "tall.tif", "w", driver="GTiff", width=120, height=1100, count=3,
        dtype="uint8", crs="EPSG:32633", nodata=0,
        transform=Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0),
    ) as dst:  # fmt: skip
        dst.write(data)
    return folder / "tall.tif"


def tall_job(tall: Path, out: Path) -> list[Job]:
    out.mkdir(exist_ok=True)
    return plan_jobs([str(tall)], output_dir=out, mask_name="{stem}_mask.tif")


SPLIT = {"split_above": 20_000, "region_rows": 512}


@pytest.fixture(scope="module")
def tall_reference(tall: Path, tiny_model: Path, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("tall_reference")
    result = run_jobs(tall_job(tall, out), tiny_model, OPTIONS, **SPLIT)  # in-process: whole
    assert [r.status for r in result.results] == ["predicted"]
    return files(out)


@pytest.mark.slow
def test_a_split_raster_is_identical_to_the_in_process_output(
    scenes, tall, tiny_model, reference, tall_reference, scheduler, tmp_path
):
    jobs = jobs_into(scenes, tmp_path) + tall_job(tall, tmp_path)
    result = run_jobs(jobs, tiny_model, OPTIONS, scheduler=scheduler, **SPLIT)
    assert [r.status for r in result.results] == ["predicted"] * 4
    assert "1 raster(s) split into 3 regions" in result.where
    assert files(tmp_path) == {**reference, **tall_reference}  # no journal left either
    again = run_jobs(jobs, tiny_model, OPTIONS, scheduler=scheduler, **SPLIT)
    assert [r.status for r in again.results] == ["skipped"] * 4


def _log_region(marks: Path, job: Job, ref, region, *args):
    result = predict_region_job(job, ref, region, *args)
    with open(marks / "regions.log", "a") as fh:
        fh.write(f"{region.index} {result.tiles}\n")
    return result


def _kill_in_region_1(marks: Path, job: Job, ref, region, *args):
    """Kill this worker once region 1 has written its first block (of two)."""
    if region.index == 1 and not (marks / "killed").exists():
        block = job.output.parent / f".{job.output.name}.resume" / "block_000002.tif"

        def watch() -> None:
            while not block.exists():
                time.sleep(0.001)
            (marks / "killed").touch()
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, daemon=True).start()
    return _log_region(marks, job, ref, region, *args)


@pytest.mark.slow
def test_a_worker_killed_inside_a_region_loses_and_duplicates_nothing(
    tall, tiny_model, tall_reference, scheduler, tmp_path
):
    out, marks = tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_kill_in_region_1, marks)
    result = run_jobs(
        tall_job(tall, out), tiny_model, OPTIONS, scheduler=scheduler, region_task=task, **SPLIT
    )
    assert (marks / "killed").exists()
    assert [r.status for r in result.results] == ["predicted"]
    assert files(out) == tall_reference
    attempts: dict[str, list[int]] = {}
    for line in (marks / "regions.log").read_text().splitlines():
        region, tiles = line.split()
        attempts.setdefault(region, []).append(int(tiles))
    # A region whose result was held by the killed worker may run again: it
    # then finds its blocks done and computes nothing. Each region computed
    # its tiles once, and region 1, started again on another worker from its
    # unfinished block, fewer than a whole region of the same height.
    assert sorted(attempts) == ["0", "1", "2"]
    assert all(sum(t > 0 for t in runs) == 1 for runs in attempts.values())
    assert 0 < max(attempts["1"]) < 0.75 * max(attempts["0"])


def _fail_region_2(job: Job, ref, region, *args):
    if region.index == 2:
        raise RuntimeError("region 2 broke")
    return predict_region_job(job, ref, region, *args)


@pytest.mark.slow
def test_a_failed_region_fails_its_raster_and_a_rerun_does_only_that_region(
    tall, tiny_model, tall_reference, scheduler, tmp_path
) -> None:
    out = tmp_path / "out"
    jobs = tall_job(tall, out)
    failed = run_jobs(
        jobs, tiny_model, OPTIONS, scheduler=scheduler, retries=1, region_task=_fail_region_2,
        **SPLIT,
    )  # fmt: skip
    assert [r.status for r in failed.results] == ["failed"]
    assert "region 2 broke" in failed.results[0].error
    assert not (out / "tall_roads.tif").exists()
    marks = tmp_path / "marks"
    marks.mkdir()
    task = functools.partial(_log_region, marks)
    again = run_jobs(jobs, tiny_model, OPTIONS, scheduler=scheduler, region_task=task, **SPLIT)
    assert [r.status for r in again.results] == ["predicted"]
    tiles = dict(line.split() for line in (marks / "regions.log").read_text().splitlines())
    assert tiles["0"] == tiles["1"] == "0"  # finished in the failed run
    assert int(tiles["2"]) > 0
    assert files(out) == tall_reference


@pytest.mark.slow
def test_cli_splits_one_raster_on_the_cluster(
    tall, tiny_model, tall_reference, scheduler, tmp_path, capsys
) -> None:
    from roadseg.cli.batch import run_batch

    run_batch(
        [str(tall)], options=OPTIONS, model=str(tiny_model), output_dir=str(tmp_path),
        mask="{stem}_mask.tif", scheduler=scheduler, split_above=0.0, region_rows=512,
    )  # fmt: skip
    assert files(tmp_path) == tall_reference
    assert "1 raster(s) split into 3 regions" in capsys.readouterr().err


def test_cli_refuses_regions_off_the_block_grid(tall, tmp_path) -> None:
    from click.testing import CliRunner

    from roadseg.cli import cli

    result = CliRunner().invoke(
        cli, ["predict", str(tall), "--workers", "2", "--region-rows", "300", "--output-dir",
               str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "300 is not a multiple of 256" in result.output
    assert "use 256 or 512" in result.output
    assert list(tmp_path.iterdir()) == []
