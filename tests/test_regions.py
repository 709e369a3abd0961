"""One raster predicted as row regions (roadseg.regions) equals a whole run, bit for bit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from roadseg.errors import RoadsegError
from roadseg.journal import journal_dir
from roadseg.model import LoadedModel, ModelInfo, build_resunet, load_model, save_model
from roadseg.predict import PredictOptions, predict_raster
from roadseg.regions import (
    Region,
    assemble,
    plan_regions,
    predict_region,
    start_split,
)

OPTIONS = PredictOptions(overlap=16, batch_size=3, precision="float32")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_model(model, path, ModelInfo(filters=(4, 8, 8, 16), tile_size=64))
    return load_model(path)


def _scene(make_geotiff, h: int = 1100, w: int = 150) -> Path:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    data[:, 300:340, :20] = 0  # nodata inside a region and across a block edge
    return make_geotiff(data, name="big.tif", nodata=0)


def test_plan_regions_cover_the_raster_on_block_edges() -> None:
    assert plan_regions(1100, 512) == [
        Region(0, 0, 512),
        Region(1, 512, 1024),
        Region(2, 1024, 1100),
    ]
    assert plan_regions(100, 256) == [Region(0, 0, 100)]
    with pytest.raises(RoadsegError, match="multiple of 256"):
        plan_regions(1000, 300)


@pytest.mark.parametrize("as_float", [False, True])
def test_regions_in_any_order_assemble_to_the_whole_run(
    make_geotiff, tiny, tmp_path, as_float
) -> None:
    src = _scene(make_geotiff)
    ref, ref_mask = tmp_path / "ref.tif", tmp_path / "ref_mask.tif"
    whole = replace(OPTIONS, as_float=as_float)
    predict_raster(src, ref, tiny, replace(whole, mask_path=ref_mask))

    out, mask = tmp_path / "out.tif", tmp_path / "out_mask.tif"
    opts = start_split(src, out, tiny, replace(whole, mask_path=mask))
    regions = plan_regions(1100, 256)
    tiles = 0
    for region in reversed(regions):  # order must not matter
        result = predict_region(src, out, tiny, opts, region)
        assert not result.skipped and result.error is None
        tiles += result.tiles
    # Every region computes its halo too: more tiles than the whole run's.
    assert tiles > 18 * 3
    assemble(src, out, tiny, opts)
    assert out.read_bytes() == ref.read_bytes()
    assert mask.read_bytes() == ref_mask.read_bytes()
    assert not journal_dir(out).exists()


def test_a_region_started_again_skips_its_finished_blocks(make_geotiff, tiny, tmp_path) -> None:
    src = _scene(make_geotiff)
    ref = tmp_path / "ref.tif"
    predict_raster(src, ref, tiny, OPTIONS)
    out = tmp_path / "out.tif"
    opts = start_split(src, out, tiny, OPTIONS)
    regions = plan_regions(1100, 768)
    full = predict_region(src, out, tiny, opts, regions[0])
    # Lose the region's last block, as if its worker had died before writing it.
    (journal_dir(out) / "block_000002.tif").unlink()
    again = predict_region(src, out, tiny, opts, regions[0])
    assert 0 < again.tiles < full.tiles
    assert predict_region(src, out, tiny, opts, regions[0]).skipped
    predict_region(src, out, tiny, opts, regions[1])
    # A rerun of the whole split finds every block done.
    assert start_split(src, out, tiny, OPTIONS) == opts
    assert all(predict_region(src, out, tiny, opts, r).skipped for r in regions)
    assemble(src, out, tiny, opts)
    assert out.read_bytes() == ref.read_bytes()


def test_a_region_without_its_journal_is_refused(make_geotiff, tiny, tmp_path) -> None:
    src = _scene(make_geotiff, h=300)
    out = tmp_path / "out.tif"
    opts = start_split(src, out, tiny, OPTIONS)
    other = replace(opts, overlap=8)  # not the run the journal was opened for
    with pytest.raises(RoadsegError, match="belongs to another run"):
        predict_region(src, out, tiny, other, Region(0, 0, 300))


def test_the_starting_batch_comes_from_the_gpu_unless_given(
    make_geotiff, tiny, tmp_path, monkeypatch
) -> None:
    import rasterio

    import roadseg.predict as predict

    asked: list[tuple] = []

    def on_a_gpu(requested, tile, filters, dtype_bytes, **kw) -> int:
        asked.append((requested, tile, tuple(filters), dtype_bytes))
        return 24

    monkeypatch.setattr(predict, "starting_batch_size", on_a_gpu)
    src = _scene(make_geotiff, h=300)
    with rasterio.open(src) as ds:
        auto = predict.prepare_run(ds, src, tiny, replace(OPTIONS, batch_size=None))
        given = predict.prepare_run(ds, src, tiny, replace(OPTIONS, batch_size=5))
        half = predict.prepare_run(
            ds, src, tiny, replace(OPTIONS, batch_size=None, precision="bfloat16")
        )
    assert (auto.batch_size, given.batch_size, half.batch_size) == (24, 5, 24)
    assert asked == [(8, 64, (4, 8, 8, 16), 4), (8, 64, (4, 8, 8, 16), 2)]
    out = tmp_path / "out.tif"
    ref = tmp_path / "ref.tif"
    predict_raster(src, out, tiny, replace(OPTIONS, batch_size=None))
    predict_raster(src, ref, tiny, OPTIONS)
    assert out.read_bytes() == ref.read_bytes()  # tiles do not depend on their batch


def test_a_stopped_region_stores_no_short_block() -> None:
    from roadseg.regions import JournalSink

    saved: dict[int, int] = {}

    class Journal:
        def save(self, index: int, bands: list[np.ndarray]) -> None:
            saved[index] = bands[0].shape[0]

    def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.full((n, 8), 0.5, np.float32), np.ones((n, 8), bool)

    opts = replace(OPTIONS, mask_path=Path("m.tif"))
    # Region rows 256..1100 of a raster; the rows arrive from row 200 (its halo).
    stopped = JournalSink(Journal(), 256, 1100, 0.5, opts)
    stopped.skip_from(200)
    stopped.add(*rows(456))  # rows 200..656: block 1 (256..512) and 144 rows more
    stopped.close()  # the run stopped here (an error, Ctrl-C)
    assert saved == {1: 256}  # the 144 rows are not a finished block

    saved.clear()
    whole = JournalSink(Journal(), 256, 1100, 0.5, opts)
    whole.skip_from(200)
    whole.add(*rows(456))
    whole.add(*rows(500))  # up to row 1156: rows past the region's stop are dropped
    whole.close()
    assert saved == {1: 256, 2: 256, 3: 256, 4: 76}


def test_regions_match_when_results_depend_on_the_call_size(
    make_geotiff, tiny, tmp_path, monkeypatch
) -> None:
    """oneDNN picks kernels by the shape of a call, so a tile's float32 result
    can depend on how many tiles share its call (measured at the 64-512
    widths). Regions end in short batches that a whole run does not have:
    every call is padded to the batch size, so the output is the same."""
    import roadseg.predict

    def call_size_dependent(network, tile, bands, tta):  # noqa: ARG001
        return lambda batch: batch[..., 0] * np.float32(0.5) + np.float32(len(batch) * 1e-3)

    monkeypatch.setattr(roadseg.predict, "make_infer_fn", call_size_dependent)
    src = _scene(make_geotiff)
    whole = replace(OPTIONS, as_float=True)  # 4 tiles a row, 3 a call: short last calls
    ref = tmp_path / "ref.tif"
    predict_raster(src, ref, tiny, whole)
    out = tmp_path / "out.tif"
    opts = start_split(src, out, tiny, whole)
    for region in plan_regions(1100, 256):
        assert predict_region(src, out, tiny, opts, region).error is None
    assemble(src, out, tiny, opts)
    assert out.read_bytes() == ref.read_bytes()
