"""Tests for roadseg.vectorize.pipeline: options, empty input, and the done-when
checks on a real SpaceNet chip, a hand-made network, synthetic scenes and
model-like masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from affine import Affine
from conftest import shared
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from shapely.geometry import LineString
from vectorize_helpers import (
    NETWORK,
    NETWORK_SHAPE,
    NETWORK_WIDTHS,
    TRANSFORM,
    UTM,
    degrade,
    inner_ends,
    mask_from_lines,
    pieces,
    scores,
    to_map,
    truth_topology,
)

from roadseg.errors import RoadsegError, UnsupportedRasterError
from roadseg.vector_metrics import centerline_metrics, junction_metrics
from roadseg.vectorize import VectorizeOptions, extract_network, vectorize_array


@pytest.fixture(scope="module")
def network_mask() -> np.ndarray:
    return mask_from_lines(NETWORK, NETWORK_WIDTHS, NETWORK_SHAPE)


def test_options_are_checked() -> None:
    mask = np.zeros((10, 10), bool)
    with pytest.raises(RoadsegError, match="hysteresis"):
        vectorize_array(mask.astype(np.float32), options=VectorizeOptions(threshold=0.4, low=0.6))
    with pytest.raises(RoadsegError, match="multiple of 8"):
        vectorize_array(mask, options=VectorizeOptions(chunk_size=100))
    with pytest.raises(RoadsegError, match="spur_m"):
        vectorize_array(mask, options=VectorizeOptions(spur_m=-1))
    with pytest.raises(UnsupportedRasterError, match=r"\[0, 1\]"):
        vectorize_array(np.full((10, 10), 3.0))


def test_empty_mask_gives_an_empty_network() -> None:
    net = vectorize_array(np.zeros((100, 100), bool), TRANSFORM, UTM)
    assert len(net) == 0 and net.total_length_m == 0 and net.junctions == 0


@pytest.mark.parametrize("chunk_size", [None, 64])
def test_a_raster_that_is_all_road_ends(chunk_size: int | None) -> None:
    """Every pixel road (a model that calls everything road): no window can find
    background, so the halo once doubled without end (an int of 4300 digits)."""
    options = VectorizeOptions(**({"chunk_size": chunk_size} if chunk_size else {}))
    net = vectorize_array(np.ones((150, 170), bool), TRANSFORM, UTM, options=options)
    assert len(net) >= 1 and net.total_length_m > 0


def test_spacenet_mask_matches_its_centerlines() -> None:
    import rasterio

    from roadseg.vectorize import RasterSource

    mask_path = shared("spacenet", "sample_road_raster_mask.tif")
    truth_path = shared("spacenet", "sample_roads_for_masking.geojson")
    with rasterio.open(mask_path) as ds:
        net = extract_network(RasterSource(ds))
    truth = [
        shapely.geometry.shape(f["geometry"])
        for f in json.loads(truth_path.read_text())["features"]
    ]
    s = centerline_metrics(list(net.lines), truth, 2.0, net.crs, truth_crs="EPSG:4326")
    assert s.completeness >= 0.95 and s.correctness >= 0.95
    j = junction_metrics(list(net.lines), truth, 3.0, net.crs, truth_crs="EPSG:4326")
    assert j.truth_junctions == 4
    assert j.matched_truth == j.truth_junctions and j.matched_pred == j.pred_junctions
    assert pieces(net) == truth_pieces_spacenet(truth)
    assert np.all(np.abs(net.width_m - 4.0) < 0.5)  # the mask: centerlines buffered to 4 m


def test_hand_made_network_clean_and_degraded(network_mask: np.ndarray) -> None:
    clean = vectorize_array(network_mask, TRANSFORM, UTM)
    s = scores(clean, NETWORK)
    assert s.completeness >= 0.98 and s.correctness >= 0.98
    assert pieces(clean) == 1 and inner_ends(clean, NETWORK_SHAPE) == 1  # the curve's end
    j = junction_metrics(list(clean.lines), to_map(NETWORK), 3.0, UTM)
    assert j.truth_junctions == 4 and j.matched_truth == 4 and j.pred_junctions == 4
    for seed in (0, 1, 2):
        mask = degrade(network_mask, NETWORK, NETWORK_WIDTHS, seed=seed, gaps=6)
        net = vectorize_array(mask, TRANSFORM, UTM)
        s = scores(net, NETWORK)
        assert s.correctness >= 0.92 and s.completeness >= 0.95, (seed, s)
        assert pieces(net) == 1, seed
        assert inner_ends(net, NETWORK_SHAPE) <= 2, seed


def truth_pieces_spacenet(truth: list) -> int:
    """Connected pieces of lon/lat lines that touch within about 10 cm."""
    tree = shapely.STRtree(truth)
    p = np.array(
        [(i, j) for i, g in enumerate(truth) for j in tree.query(g, "dwithin", 1e-6) if i != j],
        int,
    ).reshape(-1, 2)
    n = len(truth)
    g = sparse.coo_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[0]


def _scene(seed: int, size: int = 640):
    synthetic = pytest.importorskip("roadseg.synthetic")
    spec = synthetic.SceneSpec(seed=seed)
    scene = synthetic.generate_scene(size, size, spec)
    return scene, synthetic.scene_transform(spec), spec


def _scene_truth(scene, transform: Affine) -> list[LineString]:
    return to_map(list(scene.centerlines), transform)


@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_scenes_score_alike(seed: int) -> None:
    scene, transform, spec = _scene(seed)
    net = vectorize_array(scene.mask, transform, spec.crs)
    truth = _scene_truth(scene, transform)
    s = centerline_metrics(list(net.lines), truth, 2.0, spec.crs)
    assert s.completeness >= 0.95 and s.correctness >= 0.95
    j = junction_metrics(list(net.lines), truth, 4.0, spec.crs)
    assert j.recall >= 0.8 and j.precision >= 0.8


@pytest.mark.parametrize(
    "seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)
def test_model_like_masks_keep_their_topology(seed: int) -> None:
    scene, transform, spec = _scene(seed, 768)
    widths = np.asarray(scene.widths, float) * spec.gsd
    mask = degrade(scene.mask, list(scene.centerlines), list(widths), seed, gsd=spec.gsd, gaps=6)
    net = vectorize_array(mask, transform, spec.crs)
    s = centerline_metrics(list(net.lines), _scene_truth(scene, transform), 2.0, spec.crs)
    assert s.correctness >= 0.92 and s.completeness >= 0.95, s
    truth_pieces, truth_ends = truth_topology(list(scene.centerlines), mask.shape)
    got = pieces(net)
    assert got == 1 if truth_pieces == 1 else got <= truth_pieces
    assert inner_ends(net, mask.shape) <= truth_ends + 4  # no fringe of spurs
