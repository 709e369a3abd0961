"""Tests for roadseg.vectorize.graph: skeleton to graph; no pixel, ring or loop is lost."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from shapely.geometry import LineString, Point
from vectorize_helpers import GSD, TRANSFORM, UTM, mask_from_lines, to_map

from roadseg.vector_metrics import find_junctions
from roadseg.vectorize import GroundScale, VectorizeOptions, skeleton_graph, thin, vectorize_array


def _oracle_node_pixels(skel: np.ndarray) -> set[tuple[int, int]]:
    """Pixels with other than two neighbours (diagonals skipped when a shared edge
    neighbour exists), by brute force."""
    h, w = skel.shape
    out = set()
    for r, c in zip(*np.nonzero(skel), strict=True):
        n = 0
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if (dr, dc) == (0, 0):
                    continue
                rr, cc = r + dr, c + dc
                if not (0 <= rr < h and 0 <= cc < w and skel[rr, cc]):
                    continue
                if dr and dc and (skel[r + dr, c] or skel[r, c + dc]):
                    continue
                n += 1
        if n != 2:
            out.add((int(r), int(c)))
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(8, 48))
@example(seed=8297, size=10)  # a loop on a two-pixel junction, found by hypothesis
def test_every_skeleton_pixel_is_in_one_edge_or_a_node(seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    mask = ndi.binary_dilation(rng.random((size, size)) < 0.04, iterations=2)
    skel = thin(mask)
    rows, cols = np.nonzero(skel)
    scale = GroundScale(Affine.identity(), None, size, size)
    g = skeleton_graph(rows, cols, skel.shape, scale)
    seen: list[tuple[int, int]] = []
    for edge in g.edges.values():
        seen += [(int(r), int(c)) for r, c in edge.rc[1:-1]]
    everything = {(int(r), int(c)) for r, c in zip(rows, cols, strict=True)}
    nodes = _oracle_node_pixels(skel)
    # An isolated ring is anchored at one of its own pixels, which is not a
    # node pixel (a ring has none). A loop on a junction (a closed edge back
    # to a node of several pixels) is anchored at the node's centroid.
    for node, edges in g.inc.items():
        if len(edges) == 2 and edges[0] == edges[1]:
            r, c = g.pos[node]
            if float(r).is_integer() and float(c).is_integer() and (int(r), int(c)) not in nodes:
                seen.append((int(r), int(c)))
    assert len(seen) == len(set(seen))  # no pixel in two edges
    assert set(seen) <= everything
    assert everything - set(seen) <= nodes  # the rest are nodes


def test_isolated_ring_becomes_a_closed_edge() -> None:
    ring = np.zeros((40, 40), bool)
    ring[10, 10:30] = ring[29, 10:30] = ring[10:30, 10] = ring[10:30, 29] = True
    rows, cols = np.nonzero(ring)
    g = skeleton_graph(rows, cols, ring.shape, GroundScale(Affine.identity(), None, 40, 40))
    assert len(g.edges) == 1
    (edge,) = g.edges.values()
    assert edge.u == edge.v
    assert np.array_equal(edge.rc[0], edge.rc[-1])
    assert len(edge.rc) - 1 == ring.sum()  # every pixel once, the ring closed


def test_loop_and_parallel_edges_are_kept() -> None:
    # "theta": a ring with a diameter: two junctions joined by three edges.
    lines = [Point(150, 150).buffer(80, quad_segs=32).exterior, LineString([(70, 150), (230, 150)])]
    mask = mask_from_lines(lines, [6.0, 6.0], (300, 300))
    net = vectorize_array(mask, TRANSFORM, UTM)
    assert len(net) == 3
    assert sorted(net.node_degree.tolist()) == [3, 3]
    # A lollipop: a road ending in a loop.
    lines = [Point(200, 150).buffer(60, quad_segs=32).exterior, LineString([(10, 150), (140, 150)])]
    net = vectorize_array(mask_from_lines(lines, [6.0, 6.0], (300, 300)), TRANSFORM, UTM)
    assert len(net) == 2
    assert sum(int(s == e) for s, e in zip(net.start_node, net.end_node, strict=True)) == 1


def test_ring_road_survives() -> None:
    ring = Point(150, 150).buffer(90, quad_segs=64).exterior
    mask = mask_from_lines([ring], [6.0], (300, 300))
    for chunk in (2048, 64):
        net = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(chunk_size=chunk))
        assert len(net) == 1
        assert net.lines[0].is_closed
        assert net.length_m[0] == pytest.approx(2 * math.pi * 90 * GSD, rel=0.02)


@pytest.mark.parametrize(
    ("lines", "widths", "edges", "degree"),
    [
        ([LineString([(10, 100), (290, 100)]), LineString([(150, 100), (150, 290)])], [8, 6], 3, 3),
        ([LineString([(10, 100), (290, 100)]), LineString([(150, 10), (150, 290)])], [8, 6], 4, 4),
        ([LineString([(10, 10), (290, 290)]), LineString([(10, 290), (290, 10)])], [10, 10], 4, 4),
    ],
    ids=["T", "X", "wide-diagonal-X"],
)
def test_t_and_x_junctions(lines, widths, edges, degree) -> None:
    mask = mask_from_lines(lines, widths, (300, 300))
    net = vectorize_array(mask, TRANSFORM, UTM)
    assert len(net) == edges
    assert net.junctions == 1
    assert net.node_degree.max() == degree
    junction = net.nodes[np.argmax(net.node_degree)]
    truth = find_junctions(to_map(lines), 0.5)[0]
    assert math.dist(junction, truth) < 1.0
