"""Tests for roadseg.vectorize.stitching: the stitched chunk graphs equal the whole
skeleton's graph, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from vectorize_helpers import TRANSFORM, UTM

from roadseg.vectorize import GroundScale, PixelGraph, skeleton_graph, thin
from roadseg.vectorize.chunks import chunk_grid
from roadseg.vectorize.stitching import chunk_graph, merge_chunk_graphs


def chunked_skeleton_graph(
    skel: np.ndarray, size: int, scale: GroundScale, hw: np.ndarray, prob: np.ndarray | None
) -> PixelGraph:
    """What the thinning tasks and the client do: a graph structure per chunk (from
    the core and two pixels around it), stitched."""
    h, w = skel.shape
    parts = []
    for ch in chunk_grid(h, w, size):
        er0, er1, ec0, ec1 = (
            max(0, ch.r0 - 2),
            min(h, ch.r1 + 2),
            max(0, ch.c0 - 2),
            min(w, ch.c1 + 2),
        )
        rr, cc = np.nonzero(skel[ch.r0 : ch.r1, ch.c0 : ch.c1])
        rr, cc = rr + ch.r0, cc + ch.c0
        pr = None if prob is None else prob[rr, cc]
        parts.append(chunk_graph(skel[er0:er1, ec0:ec1], er0, ec0, ch, w, hw[rr, cc], pr))
    return merge_chunk_graphs(parts, skel.shape, scale, prob is not None and skel.any())


def whole_skeleton_graph(
    skel: np.ndarray, scale: GroundScale, hw: np.ndarray, prob: np.ndarray | None
) -> PixelGraph:
    rows, cols = np.nonzero(skel)
    pr = None if prob is None or not rows.size else prob[rows, cols]  # as extract_network
    return skeleton_graph(rows, cols, skel.shape, scale, hw[rows, cols], pr)


def assert_same_graph(a: PixelGraph, b: PixelGraph) -> None:
    """Equal node and edge ids, positions, widths, probabilities, incidences, pixel
    paths and lengths, bit for bit (NaN equal to NaN)."""

    def same(x: object, y: object) -> bool:
        if x is None or y is None:
            return x is y
        return np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)

    assert a.with_prob == b.with_prob
    assert (a._next_node, a._next_edge) == (b._next_node, b._next_edge)
    assert list(a.pos) == list(b.pos) and list(a.edges) == list(b.edges)
    for n in a.pos:
        assert same(a.pos[n], b.pos[n]) and same(a.rad[n], b.rad[n]), n
        assert same(a.nprob[n], b.nprob[n]) and a.inc[n] == b.inc[n], n
    for e, x in a.edges.items():
        y = b.edges[e]
        assert (x.u, x.v, x.bridged, x.length) == (y.u, y.v, y.bridged, y.length), e
        assert same(x.rc, y.rc) and same(x.hw, y.hw) and same(x.prob, y.prob), e


def random_skeleton(seed: int, h: int, w: int) -> np.ndarray:
    """Thinned speckle and rectangle outlines: junctions, spurs, loops, isolated rings."""
    rng = np.random.default_rng(seed)
    mask = ndi.binary_dilation(rng.random((h, w)) < rng.uniform(0.005, 0.06), iterations=2)
    for _ in range(int(rng.integers(0, 4))):
        r0, c0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        r1, c1 = r0 + int(rng.integers(4, 24)), c0 + int(rng.integers(4, 24))
        mask[r0:r1, c0:c1] = True
        mask[r0 + 1 : r1 - 1, c0 + 1 : c1 - 1] = False
    return thin(mask)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(1, 60),
    w=st.integers(1, 60),
    size=st.sampled_from([1, 2, 3, 5, 8, 13, 64]),
    geographic=st.booleans(),
    with_prob=st.booleans(),
)
def test_stitched_chunk_graphs_equal_the_whole_skeleton_graph(
    seed: int, h: int, w: int, size: int, geographic: bool, with_prob: bool
) -> None:
    # Chunks down to one pixel (the options ask for 64 and more; the stitching does
    # not care), in metres that vary over the raster or not.
    skel = random_skeleton(seed, h, w)
    rng = np.random.default_rng(seed)
    hw = rng.random((h, w))
    prob = rng.random((h, w)).astype(np.float32) if with_prob else None
    if geographic:
        transform = Affine(2.7e-6, 0, -115.2338076, 0, -2.7e-6, 36.1423377)
        scale = GroundScale(transform, "EPSG:4326", h, w)
    else:
        scale = GroundScale(TRANSFORM, UTM, h, w)
    whole = whole_skeleton_graph(skel, scale, hw, prob)
    assert_same_graph(whole, chunked_skeleton_graph(skel, size, scale, hw, prob))


def _hand_made_skeletons() -> dict[str, tuple[np.ndarray, int]]:
    """Skeletons (not thinned further) with the chunk size that puts them on borders."""
    out = {}
    ring = np.zeros((40, 40), bool)  # an isolated ring over nine chunks of 13 px
    ring[5, 5:35] = ring[34, 5:35] = ring[5:35, 5] = ring[5:35, 34] = True
    out["ring-across-nine-chunks"] = (ring, 13)
    small = np.zeros((16, 16), bool)  # a ring inside one chunk, one over a corner
    small[2, 2:6] = small[5, 2:6] = small[2:6, 2] = small[2:6, 5] = True
    small[6, 6:10] = small[9, 6:10] = small[6:10, 6] = small[6:10, 9] = True
    out["rings-in-and-over-a-corner"] = (small, 8)
    long = np.zeros((30, 60), bool)  # one diagonal staircase edge over many chunks
    long[np.arange(3, 27), np.arange(3, 27) * 2 // 1] = True
    long[np.arange(3, 27), np.arange(3, 27) * 2 + 1] = True
    out["edge-across-chunks"] = (long, 8)
    corner = np.zeros((32, 32), bool)  # an X whose junction cluster sits on a corner
    idx = np.arange(2, 30)
    corner[idx, idx] = corner[idx, 31 - idx] = True
    corner[15:17, 15:17] = True
    out["junction-on-a-chunk-corner"] = (corner, 16)
    border = np.zeros((32, 40), bool)  # a road along a border, a side road across it
    border[15, 2:38] = True  # the last row of the first chunks
    border[16:30, 20] = True
    border[16, 2:10] = True  # and a parallel one just across it: many node pixels
    out["road-along-a-chunk-border"] = (border, 16)
    single = np.zeros((12, 12), bool)  # one-pixel chains between node clusters
    single[2, 2:10] = True
    single[3, 4] = single[4, 3:6] = True
    out["one-pixel-chains"] = (single, 4)
    return out


@pytest.mark.parametrize("name", list(_hand_made_skeletons()))
def test_stitched_chunk_graphs_on_borders_and_corners(name: str) -> None:
    skel, size = _hand_made_skeletons()[name]
    h, w = skel.shape
    rng = np.random.default_rng(0)
    hw, prob = rng.random((h, w)), rng.random((h, w)).astype(np.float32)
    scale = GroundScale(TRANSFORM, UTM, h, w)
    whole = whole_skeleton_graph(skel, scale, hw, prob)
    assert whole.edges
    for s in sorted({1, 2, 3, size, size + 1, max(h, w)}):
        assert_same_graph(whole, chunked_skeleton_graph(skel, s, scale, hw, prob))
    rings = [e for e in whole.edges.values() if e.u == e.v]
    if name.startswith("ring"):
        assert rings and all(len(e.rc) > 10 for e in rings)
    if name == "edge-across-chunks":
        (edge,) = whole.edges.values()
        assert len({(int(r) // size, int(c) // size) for r, c in edge.rc}) >= 6
    if name == "junction-on-a-chunk-corner":
        assert max(len(v) for v in whole.inc.values()) == 4
