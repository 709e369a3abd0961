"""Many inputs to jobs (roadseg.batch) and the batch side of ``roadseg predict``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
import pytest
import rasterio.shutil

from roadseg.batch import Job, expand_inputs, is_pattern, make_jobs, plan_jobs
from roadseg.cli.batch import run_batch, wants_batch
from roadseg.errors import InvalidRasterError, OutputError, RoadsegError


@pytest.fixture
def tiles(make_geotiff) -> list[Path]:
    data = np.zeros((3, 8, 8), np.uint8)
    return [make_geotiff(data, name=f"{name}.tif") for name in ("b", "a", "c")]


def test_paths_keep_their_order_and_globs_are_sorted(tiles, tmp_path) -> None:
    b, a, c = tiles
    assert expand_inputs([str(c), str(a)]) == [c, a]
    assert expand_inputs([str(tmp_path / "*.tif")]) == [a, b, c]


def test_a_file_named_twice_is_kept_once(tiles, tmp_path) -> None:
    b, a, c = tiles
    assert expand_inputs([str(b), str(tmp_path / "*.tif"), str(b)]) == [b, a, c]


def test_list_file_with_comments_relative_paths_and_patterns(tiles, tmp_path) -> None:
    b, a, c = tiles
    listing = tmp_path / "lists" / "tiles.txt"
    listing.parent.mkdir()
    listing.write_text(f"# my tiles\n\n../c.tif\n  {a}  \n../[ab].tif\n")
    expected = [tmp_path / "lists" / "../c.tif", a, tmp_path / "lists" / "../b.tif"]
    assert expand_inputs([f"@{listing}"]) == expected
    assert expand_inputs([str(listing)]) == expected  # a .txt file is a list too


def test_a_vrt_counts_as_one_raster(tiles, tmp_path) -> None:
    vrt = tmp_path / "mosaic.vrt"
    rasterio.shutil.copy(tiles[0], vrt, driver="VRT")
    jobs = plan_jobs([str(tmp_path / "*.vrt")])
    assert jobs == [Job(vrt, tmp_path / "mosaic_roads.tif")]


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("nothing-*.tif", ["matches no file", "quote it"]),
        ("missing.tif", ["missing.tif does not exist"]),
        ("@missing.txt", ["list file", "does not exist"]),
        ("@empty.txt", ["names no raster"]),
        ("@bad.txt", ["nope.tif", "listed in", "bad.txt", "does not exist"]),
        ("folder", ["is a folder", "folder/*.tif"]),
    ],
)
def test_bad_inputs_fail_in_one_line(tiles, tmp_path, monkeypatch, given, words) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    (tmp_path / "bad.txt").write_text("a.tif\nnope.tif\n")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InvalidRasterError) as info:
        expand_inputs([given])
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_no_input_at_all() -> None:
    with pytest.raises(InvalidRasterError, match="no input given"):
        expand_inputs([])


def test_outputs_beside_inputs_or_in_output_dir(tiles, tmp_path) -> None:
    b, a, _ = tiles
    assert make_jobs([a]) == [Job(a, tmp_path / "a_roads.tif")]
    out = tmp_path / "out"
    jobs = make_jobs(
        [a, b], output_dir=out, mask_name="{stem}_mask.tif", preview_name="png/{stem}.png"
    )
    assert jobs[1] == Job(b, out / "b_roads.tif", out / "b_mask.tif", out / "png" / "b.png")
    assert jobs[1].outputs == (out / "b_roads.tif", out / "b_mask.tif", out / "png" / "b.png")


def test_two_inputs_with_one_name_cannot_share_an_output_dir(make_geotiff, tmp_path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    data = np.zeros((3, 8, 8), np.uint8)
    one = make_geotiff(data, name="x/scene.tif")
    two = make_geotiff(data, name="y/scene.tif")
    assert len(make_jobs([one, two])) == 2  # beside their inputs: no clash
    with pytest.raises(OutputError, match="would both write .*scene_roads.tif"):
        make_jobs([one, two], output_dir=tmp_path / "out")


def test_an_output_may_not_be_its_input_or_another_input(tiles, tmp_path) -> None:
    b, a, _ = tiles
    with pytest.raises(OutputError, match="is the input itself"):
        make_jobs([a], output_name="{stem}.tif")
    roads = tmp_path / "a_roads.tif"
    roads.write_bytes(a.read_bytes())
    with pytest.raises(OutputError, match="is also an input"):
        plan_jobs([str(a), str(roads)])


def test_a_pattern_leaves_out_outputs_of_an_earlier_run(tiles, tmp_path) -> None:
    b, a, c = tiles
    for src in tiles:
        src.with_name(f"{src.stem}_roads.tif").write_bytes(src.read_bytes())
    jobs = plan_jobs([str(tmp_path / "*.tif")])
    assert [job.input for job in jobs] == [a, b, c]


def test_a_bad_name_pattern_is_refused(tiles) -> None:
    with pytest.raises(OutputError, match="not a valid pattern"):
        make_jobs(tiles, output_name="{name}.tif")


def test_is_pattern() -> None:
    assert is_pattern("*.tif") and is_pattern("@x.txt") and is_pattern("t[12].tif")
    assert not is_pattern("tiles/scene.tif")


# --------------------------------------------------------------------------- CLI side


def test_wants_batch(tiles, tmp_path) -> None:
    one = str(tiles[0])
    assert not wants_batch([one], None, None, None)
    assert wants_batch([one, str(tiles[1])], None, None, None)
    assert wants_batch([str(tmp_path / "*.tif")], None, None, None)
    assert wants_batch([one], "out", None, None)
    assert wants_batch([one], None, 2, None)
    assert wants_batch([one], None, None, "tcp://host:8786")
    listing = tmp_path / "list.txt"
    listing.write_text(one)
    assert wants_batch([str(listing)], None, None, None)


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"output": "one.tif"}, "--output"),
        ({"mask": "mask.tif"}, "--mask"),
        ({"vectorize": ""}, "--vectorize"),
        ({"workers": 2, "scheduler": "tcp://host:8786"}, "--workers"),
    ],
)
def test_batch_refuses_single_file_options(tiles, kwargs, hint) -> None:
    from roadseg.predict import PredictOptions

    with pytest.raises(click.BadParameter) as info:
        run_batch([str(t) for t in tiles], options=PredictOptions(), model=None, **kwargs)
    assert info.value.param_hint == hint


def test_without_dask_the_flags_say_how_to_install_it(tiles, monkeypatch) -> None:
    from roadseg.predict import PredictOptions

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if absent
    with pytest.raises(RoadsegError) as info:
        run_batch([str(tiles[0])], options=PredictOptions(), model=None, workers=2)
    message = str(info.value)
    assert 'pip install "roadseg[dask]"' in message and "\n" not in message
