"""Tests for roadseg.vectorize: thinning, skeleton graph, cleaning, chunking, metres."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from affine import Affine
from conftest import shared
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from shapely.geometry import LineString, Point

from roadseg.errors import RoadsegError, UnsupportedRasterError
from roadseg.vector_metrics import centerline_metrics, find_junctions, junction_metrics
from roadseg.vectorize import (
    ArraySource,
    GroundScale,
    PixelGraph,
    RoadNetwork,
    VectorizeOptions,
    _chunk_graph,
    _chunks,
    _merge_chunk_graphs,
    douglas_peucker,
    extract_network,
    skeleton_graph,
    thin,
    vectorize_array,
)

UTM = "EPSG:32633"
GSD = 0.5
TRANSFORM = Affine(GSD, 0, 500000.0, 0, -GSD, 5500000.0)


# --------------------------------------------------------------------------------------
# Helpers: masks from centerlines, degradation like a model's output, topology
# --------------------------------------------------------------------------------------


def mask_from_lines(
    lines: list[LineString], widths_m: list[float], shape: tuple[int, int], gsd: float = GSD
) -> np.ndarray:
    """Pixels whose centre lies within half a width of a centerline (pixel coords)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    pts = shapely.points(xx.ravel() + 0.5, yy.ravel() + 0.5)
    mask = np.zeros(pts.size, bool)
    for line, width in zip(lines, widths_m, strict=True):
        mask |= shapely.distance(pts, line) <= width / 2 / gsd
    return mask.reshape(shape)


def to_map(lines: list[LineString], transform: Affine = TRANSFORM) -> list[LineString]:
    """Pixel-coordinate lines (x = col + 0.5 at centres) to map coordinates."""

    def f(xy: np.ndarray) -> np.ndarray:
        x = transform.c + transform.a * xy[:, 0] + transform.b * xy[:, 1]
        y = transform.f + transform.d * xy[:, 0] + transform.e * xy[:, 1]
        return np.stack([x, y], axis=1)

    return [shapely.transform(line, f) for line in lines]


def degrade(
    mask: np.ndarray,
    centerlines: list[LineString],
    widths_m: list[float],
    seed: int,
    *,
    gsd: float = GSD,
    gaps: int = 5,
    gap_m: tuple[float, float] = (3.0, 6.0),
) -> np.ndarray:
    """A road mask as a segmentation model gives it.

    Ragged edges (smooth and pixel noise on the boundary, scaled with the road's
    width up to 0.4 m), speckle (isolated false positives) and a few false blobs of
    5-25 m^2, small holes (cars, shadows), and ``gaps`` stretches of 3-6 m where
    the road is missing (trees), away from junctions.
    """
    rng = np.random.default_rng(seed)
    m = mask.astype(bool)
    signed = (ndi.distance_transform_edt(m) - ndi.distance_transform_edt(~m)) * gsd
    smooth = ndi.gaussian_filter(rng.standard_normal(m.shape), 4.0)
    smooth /= smooth.std()
    fine = rng.standard_normal(m.shape)
    # Noise amplitude from the width of the nearest centerline.
    label = np.zeros(m.shape, np.int32)
    for i, line in enumerate(centerlines):
        ts = np.append(np.arange(0.0, line.length, 0.5), line.length)
        xy = shapely.get_coordinates(shapely.line_interpolate_point(line, ts))
        r = np.clip(xy[:, 1].astype(int), 0, m.shape[0] - 1)
        c = np.clip(xy[:, 0].astype(int), 0, m.shape[1] - 1)
        label[r, c] = i + 1
    _, (ir, ic) = ndi.distance_transform_edt(label == 0, return_indices=True)
    width = np.asarray(widths_m, float)[label[ir, ic] - 1]
    amp = np.minimum(0.4, 0.12 * width)
    out = signed + amp * (smooth + 0.5 * fine) > 0
    out |= ndi.binary_dilation(rng.random(m.shape) < 0.002) & (rng.random(m.shape) < 0.7)
    yy, xx = np.ogrid[: m.shape[0], : m.shape[1]]
    for _ in range(max(1, int(m.size * gsd**2 / 4000))):
        r, c = rng.integers(0, m.shape[0]), rng.integers(0, m.shape[1])
        out |= (yy - r) ** 2 + (xx - c) ** 2 <= (rng.uniform(1.2, 2.8) / gsd) ** 2
    out &= ~(ndi.binary_dilation(rng.random(m.shape) < 0.003) & m)
    junctions = find_junctions(centerlines, 1.0)
    long_lines = [ln for ln in centerlines if ln.length * gsd > 30]
    made = tries = 0
    while made < gaps and tries < 500 and long_lines:
        tries += 1
        line = long_lines[rng.integers(len(long_lines))]
        p = line.interpolate(rng.uniform(0.2, 0.8), normalized=True)
        if len(junctions) and np.hypot(*(junctions - [p.x, p.y]).T).min() * gsd < 15:
            continue
        radius = rng.uniform(*gap_m) / gsd / 2
        out &= (yy + 0.5 - p.y) ** 2 + (xx + 0.5 - p.x) ** 2 > radius**2
        made += 1
    return out


def pieces(net: RoadNetwork) -> int:
    """Connected pieces of a network."""
    n = len(net.nodes)
    if n == 0:
        return 0
    g = sparse.coo_matrix((np.ones(len(net)), (net.start_node, net.end_node)), shape=(n, n))
    return connected_components(g, directed=False)[0]


def inner_ends(net: RoadNetwork, shape: tuple[int, int], border: float = 6) -> int:
    """Dead ends of a network that are not at the raster's edge."""
    inv = ~net.transform
    count = 0
    for (x, y), degree in zip(net.nodes, net.node_degree, strict=True):
        col = inv.a * x + inv.b * y + inv.c
        row = inv.d * x + inv.e * y + inv.f
        inside = border < col < shape[1] - border and border < row < shape[0] - border
        count += int(degree == 1 and inside)
    return count


def truth_topology(lines: list[LineString], shape: tuple[int, int], border: float = 4):
    """(pieces, dead ends away from the edge) of pixel-coordinate truth lines.

    The lines are clipped a few pixels inside the raster: roads that only meet
    beyond (or right at) the edge are separate pieces in the raster.
    """
    box = shapely.box(border, border, shape[1] - border, shape[0] - border)
    geoms = []
    for line in lines:
        part = line.intersection(box)
        geoms += [g for g in getattr(part, "geoms", [part]) if g.geom_type == "LineString"]
    tree = shapely.STRtree(geoms)
    pairs = [
        (i, j)
        for i, g in enumerate(geoms)
        for j in tree.query(g, predicate="dwithin", distance=1.0)
        if i != j
    ]
    n = len(geoms)
    p = np.array(pairs, int).reshape(-1, 2)
    k = connected_components(
        sparse.coo_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(n, n)), directed=False
    )[0]
    ends = 0
    for i, g in enumerate(geoms):
        for x, y in (g.coords[0], g.coords[-1]):
            if border + 1 < x < shape[1] - border - 1 and border + 1 < y < shape[0] - border - 1:
                near = tree.query(Point(x, y), predicate="dwithin", distance=1.0)
                ends += int(all(j == i for j in near))
    return k, ends


def same_network(a: RoadNetwork, b: RoadNetwork) -> bool:
    if len(a) != len(b):
        return False
    geoms = all(x.equals_exact(y, 0) for x, y in zip(a.lines, b.lines, strict=True))
    cols = [("length_m",), ("width_m",), ("start_node",), ("end_node",), ("node_degree",)]
    arrays = all(np.array_equal(getattr(a, c[0]), getattr(b, c[0]), equal_nan=True) for c in cols)
    probs = (a.prob_mean is None) == (b.prob_mean is None)
    if a.prob_mean is not None and b.prob_mean is not None:
        probs = np.array_equal(a.prob_mean, b.prob_mean, equal_nan=True)
        probs &= np.array_equal(a.prob_min, b.prob_min, equal_nan=True)
    return geoms and arrays and bool(probs) and np.array_equal(a.nodes, b.nodes)


# A hand-made network (pixel coordinates, 640 x 640 px at 0.5 m): a wide main road
# crossing the raster, a crossing road (X), a side road (T) leading to a roundabout,
# and a curved road ending on the crossing road (T).
NETWORK_SHAPE = (640, 640)
NETWORK = [
    LineString([(-10, 200), (650, 205)]),
    LineString([(320, -10), (322, 650)]),
    LineString([(500, 203.6), (500, 470)]),
    Point(500, 520).buffer(50, quad_segs=32).exterior,
    LineString(
        [(321.4, 430)]
        + [
            (321 - 220 * math.sin(t), 430 + 150 * (1 - math.cos(t)))
            for t in np.linspace(0, 1.2, 30)
        ][1:]
    ),
]
NETWORK_WIDTHS = [9.0, 7.0, 6.0, 6.0, 5.0]


@pytest.fixture(scope="module")
def network_mask() -> np.ndarray:
    return mask_from_lines(NETWORK, NETWORK_WIDTHS, NETWORK_SHAPE)


def scores(net: RoadNetwork, truth_px: list[LineString], buffer_m: float = 2.0):
    return centerline_metrics(list(net.lines), to_map(truth_px), buffer_m, UTM)


# --------------------------------------------------------------------------------------
# Thinning
# --------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    density=st.floats(0.05, 0.6),
    grow=st.integers(0, 3),
)
def test_thin_equals_skimage_thin(seed: int, h: int, w: int, density: float, grow: int) -> None:
    from skimage.morphology import thin as sk_thin

    rng = np.random.default_rng(seed)
    mask = rng.random((h, w)) < density
    if grow:
        mask = ndi.binary_dilation(mask, iterations=grow) & (rng.random((h, w)) < 0.95)
    assert np.array_equal(thin(mask), sk_thin(mask))


def test_thin_is_idempotent() -> None:
    rng = np.random.default_rng(1)
    mask = ndi.binary_dilation(rng.random((80, 90)) < 0.02, iterations=4)
    once = thin(mask)
    assert np.array_equal(thin(once), once)


# --------------------------------------------------------------------------------------
# Skeleton graph: no pixel, ring or loop is lost
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Skeleton graph chunk by chunk: the stitched graph equals the whole one
# --------------------------------------------------------------------------------------


def chunked_skeleton_graph(
    skel: np.ndarray, size: int, scale: GroundScale, hw: np.ndarray, prob: np.ndarray | None
) -> PixelGraph:
    """What the thinning tasks and the client do: a graph structure per chunk (from
    the core and two pixels around it), stitched."""
    h, w = skel.shape
    parts = []
    for ch in _chunks(h, w, size):
        er0, er1, ec0, ec1 = (
            max(0, ch.r0 - 2),
            min(h, ch.r1 + 2),
            max(0, ch.c0 - 2),
            min(w, ch.c1 + 2),
        )
        rr, cc = np.nonzero(skel[ch.r0 : ch.r1, ch.c0 : ch.c1])
        rr, cc = rr + ch.r0, cc + ch.c0
        pr = None if prob is None else prob[rr, cc]
        parts.append(_chunk_graph(skel[er0:er1, ec0:ec1], er0, ec0, ch, w, hw[rr, cc], pr))
    return _merge_chunk_graphs(parts, skel.shape, scale, prob is not None and skel.any())


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


# --------------------------------------------------------------------------------------
# Cleaning: speckle, holes, hysteresis
# --------------------------------------------------------------------------------------


def test_speckle_goes_holes_fill_long_thin_pieces_stay() -> None:
    road = LineString([(0, 60), (300, 60)])
    mask = mask_from_lines([road], [6.0], (200, 300))
    mask[55:59, 100:104] = False  # a car: a 4 m^2 hole
    mask[130:134, 50:54] = True  # speckle: 4 m^2
    mask[150:170, 200:215] = True  # a compact 75 m^2 blob: its skeleton is a stub
    mask[180:183, 20:60] = True  # 30 m^2 but thin and 20 m long: a road piece
    net = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(min_area_m2=40))
    rows = sorted(round((5500000.0 - ln.centroid.y) / GSD) for ln in net.lines)
    assert len(net) == 2  # the road (no loop round the car) and the thin piece
    assert rows[0] == pytest.approx(60, abs=1) and rows[1] == pytest.approx(181, abs=1)
    assert net.length_m == pytest.approx([150 / 0.9996, 20 / 0.9996], abs=2)
    # Without hole filling the car makes a loop: two parallel edges.
    net = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(min_area_m2=40, hole_area_m2=0))
    assert len(net) > 2
    # With a smaller area limit the 4 m^2 speckle stays but is too short for a line.
    net = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(min_area_m2=1))
    assert len(net) == 2


def test_hysteresis_keeps_weak_road_connected_to_strong() -> None:
    prob = np.zeros((200, 400), np.float32)
    prob[95:106, 0:200] = 0.9  # a clear road
    prob[95:106, 200:400] = 0.35  # the same road, faint
    prob[150:161, 50:350] = 0.35  # a faint stripe with no clear part: not a road
    plain = vectorize_array(prob, TRANSFORM, UTM, VectorizeOptions(threshold=0.5))
    hyst = vectorize_array(prob, TRANSFORM, UTM, VectorizeOptions(threshold=0.5, low=0.3))
    assert plain.total_length_m == pytest.approx(100, abs=3)
    assert len(hyst) == 1
    assert hyst.total_length_m == pytest.approx(200, abs=3)
    assert hyst.prob_min is not None and hyst.prob_min[0] == pytest.approx(0.35, abs=1e-6)
    assert hyst.prob_mean is not None and 0.35 < hyst.prob_mean[0] < 0.9


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


# --------------------------------------------------------------------------------------
# Chunked equals unchunked
# --------------------------------------------------------------------------------------


def test_chunked_equals_unchunked(network_mask: np.ndarray) -> None:
    mask = degrade(network_mask, NETWORK, NETWORK_WIDTHS, seed=3)
    whole = vectorize_array(mask, TRANSFORM, UTM)
    for chunk, halo in ((64, 8), (200, 40), (256, 128)):
        opts = VectorizeOptions(chunk_size=chunk, halo=halo)
        assert same_network(whole, vectorize_array(mask, TRANSFORM, UTM, opts)), (chunk, halo)


def test_chunked_equals_unchunked_with_probabilities_and_hysteresis(network_mask) -> None:
    rng = np.random.default_rng(5)
    mask = degrade(network_mask, NETWORK, NETWORK_WIDTHS, seed=5)
    prob = ndi.gaussian_filter(mask.astype(np.float32), 1.2) * 0.9
    prob += ndi.gaussian_filter(rng.random(mask.shape).astype(np.float32), 2.0) * 0.3 - 0.1
    prob = np.where(network_mask & ~mask, np.maximum(prob, 0.3), prob)  # hidden by trees
    prob = np.clip(prob, 0, 1).astype(np.float32)
    opts = VectorizeOptions(threshold=0.5, low=0.25)
    whole = vectorize_array(prob, TRANSFORM, UTM, opts)
    chunked = vectorize_array(
        prob, TRANSFORM, UTM, VectorizeOptions(**{**opts.__dict__, "chunk_size": 96, "halo": 16})
    )
    assert whole.prob_mean is not None
    assert same_network(whole, chunked)


def test_halo_grows_when_a_window_needs_it() -> None:
    # A 120 x 120 px plaza takes ~120 thinning steps; a 16 px halo is far too small.
    mask = mask_from_lines([LineString([(0, 100), (400, 100)])], [6.0], (300, 400))
    mask[150:270, 100:220] = True
    mask[100:150, 155:165] = True
    stats: dict = {}
    whole = vectorize_array(mask, TRANSFORM, UTM)
    src = ArraySource(mask, TRANSFORM, UTM)
    chunked = extract_network(src, VectorizeOptions(chunk_size=64, halo=16), stats=stats)
    assert stats["halo"] > 100
    assert same_network(whole, chunked)


def test_chunked_equals_unchunked_in_a_geographic_crs() -> None:
    transform = Affine(2.7e-6, 0, -115.2338076, 0, -2.7e-6, 36.1423377)
    lines = [LineString([(0, 90), (300, 120)]), LineString([(150, 0), (140, 300)])]
    mask = mask_from_lines(lines, [4.0, 4.0], (300, 300), gsd=0.27)
    whole = vectorize_array(mask, transform, "EPSG:4326")
    chunked = vectorize_array(mask, transform, "EPSG:4326", VectorizeOptions(chunk_size=64))
    assert same_network(whole, chunked)


# --------------------------------------------------------------------------------------
# Graph cleaning: spurs, gaps
# --------------------------------------------------------------------------------------


def test_ragged_edges_leave_no_spur_fringe() -> None:
    rng = np.random.default_rng(0)
    mask = mask_from_lines([LineString([(0, 100), (600, 100)])], [8.0], (200, 600))
    for c in rng.integers(5, 595, 40):  # bumps of 1-2.5 m on both edges
        side = rng.choice([-1, 1])
        depth = int(rng.integers(2, 6))
        r0 = 100 + side * 8
        rows = slice(r0, r0 + side * depth, side) if side > 0 else slice(r0 + side * depth, r0)
        mask[rows, c : c + int(rng.integers(2, 6))] = True
    net = vectorize_array(mask, TRANSFORM, UTM)
    assert len(net) == 1
    assert net.length_m[0] == pytest.approx(300, rel=0.02)


def test_a_real_side_road_is_not_a_spur() -> None:
    lines = [LineString([(0, 100), (400, 100)]), LineString([(200, 100), (200, 140)])]
    net = vectorize_array(mask_from_lines(lines, [8.0, 5.0], (200, 400)), TRANSFORM, UTM)
    assert len(net) == 3  # 20 m side road: kept


@pytest.mark.parametrize(("gap_m", "joined"), [(3.0, True), (8.0, True), (18.0, False)])
def test_gaps_between_aligned_ends_are_bridged(gap_m: float, joined: bool) -> None:
    mask = mask_from_lines([LineString([(0, 100.3), (600, 110)])], [6.0], (200, 600))
    g = gap_m / GSD
    mask[:, int(300 - g / 2) : int(300 + g / 2)] = False
    net = vectorize_array(mask, TRANSFORM, UTM)
    assert (len(net) == 1) is joined
    assert pieces(net) == (1 if joined else 2)


def test_ends_meeting_at_a_corner_are_not_bridged() -> None:
    # Two dead ends 8 m apart whose roads run at right angles.
    lines = [LineString([(100, 100), (300, 100)]), LineString([(90, 116), (90, 300)])]
    net = vectorize_array(mask_from_lines(lines, [5.0, 5.0], (320, 320)), TRANSFORM, UTM)
    assert pieces(net) == 2


def test_a_hidden_t_junction_is_bridged() -> None:
    lines = [LineString([(0, 100), (400, 100)]), LineString([(200, 118), (205, 300)])]
    net = vectorize_array(mask_from_lines(lines, [8.0, 6.0], (320, 400)), TRANSFORM, UTM)
    assert pieces(net) == 1
    assert net.junctions == 1 and net.node_degree.max() == 3


def test_bridge_follows_the_highest_probability() -> None:
    # A road bending through a 10 m gap: its probability falls off from the centre
    # line, and in the gap it is faint (at most 0.33) but still there.
    arc = LineString(
        [(100 + 200 * t, 150 - 60 * math.sin(math.pi * t)) for t in np.linspace(0, 1, 60)]
    )
    yy, xx = np.mgrid[0:250, 0:400]
    dist = shapely.distance(shapely.points(xx.ravel() + 0.5, yy.ravel() + 0.5), arc) * GSD
    prob = 0.95 * np.exp(-((dist.reshape(250, 400) / 3.0) ** 2))
    prob[(yy + 0.5 - 90) ** 2 + (xx + 0.5 - 200) ** 2 <= (5.0 / GSD) ** 2] *= 0.35
    opts = VectorizeOptions(threshold=0.5, gap_m=15, gap_angle_deg=45)
    net = vectorize_array(prob.astype(np.float32), TRANSFORM, UTM, opts)
    assert len(net) == 1
    truth = to_map([arc])[0]
    guided = net.lines[0].hausdorff_distance(truth)
    assert guided < 1.0
    assert net.prob_min is not None and 0.25 < net.prob_min[0] < 0.34
    # From the mask alone the bridge is a straight chord, further off.
    straight = vectorize_array((prob > 0.5).astype(np.uint8), TRANSFORM, UTM, opts)
    assert len(straight) == 1
    assert straight.lines[0].hausdorff_distance(truth) > guided


# --------------------------------------------------------------------------------------
# Attributes, simplification, metres
# --------------------------------------------------------------------------------------


def test_lengths_and_widths_in_metres(network_mask: np.ndarray) -> None:
    lines = [LineString([(0, 100), (400, 100)])]
    for width in (4.0, 6.5, 9.0):
        net = vectorize_array(mask_from_lines(lines, [width], (200, 400)), TRANSFORM, UTM)
        assert net.width_m[0] == pytest.approx(width, abs=0.5)
        assert net.length_m[0] == pytest.approx(200 / 0.9996, rel=1e-3)  # UTM scale factor
        assert net.prob_mean is None and "prob_mean" not in net.properties()


def test_simplification_stays_within_tolerance() -> None:
    arc = LineString(
        [(50 + 300 * t, 200 - 120 * math.sin(math.pi * t)) for t in np.linspace(0, 1, 80)]
    )
    mask = mask_from_lines([arc], [5.0], (260, 400))
    raw = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(simplify_m=0))
    for tol in (0.25, 1.0):
        simple = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(simplify_m=tol))
        assert len(simple.lines[0].coords) < len(raw.lines[0].coords)
        assert raw.lines[0].hausdorff_distance(simple.lines[0]) <= tol + 1e-9


def test_douglas_peucker_keeps_ends_and_corners() -> None:
    pts = np.array([[0, 0], [1, 0.01], [2, 0], [2, 1], [2, 2]], float)
    assert douglas_peucker(pts, 0.1).tolist() == [0, 2, 4]
    assert douglas_peucker(pts, 0).tolist() == [0, 1, 2, 3, 4]


def test_ground_scale_in_degrees_matches_utm() -> None:
    from rasterio.warp import transform as warp

    transform = Affine(2.7e-6, 0, -115.2338076, 0, -2.7e-6, 36.1423377)
    scale = GroundScale(transform, "EPSG:4326", 1300, 1300)
    xs, ys = warp(
        "EPSG:4326", "EPSG:32611", [transform.c, transform.c + 2.7e-6 * 1000], [36.14] * 2
    )
    east = math.dist((xs[0], ys[0]), (xs[1], ys[1])) / 1000
    xs, ys = warp("EPSG:4326", "EPSG:32611", [-115.232] * 2, [36.14, 36.14 + 2.7e-6 * 1000])
    north = math.dist((xs[0], ys[0]), (xs[1], ys[1])) / 1000
    jac = scale.jacobian(np.array([650.0]), np.array([650.0]))[0]
    # UTM zone 11 distorts by its scale factor there (about 0.99963): allow 0.1 %.
    assert abs(jac[0, 1]) == pytest.approx(east, rel=1e-3)  # one column step: east
    assert abs(jac[1, 0]) == pytest.approx(north, rel=1e-3)  # one row step: north
    assert 0.24 < abs(jac[0, 1]) < 0.25 and 0.29 < abs(jac[1, 0]) < 0.31
    mask = np.zeros((50, 1100), bool)
    mask[20:35, :] = True
    net = vectorize_array(mask, transform, "EPSG:4326")
    assert net.length_m[0] == pytest.approx(1100 * abs(jac[0, 1]), rel=2e-3)
    assert net.width_m[0] == pytest.approx(15 * abs(jac[1, 0]), abs=0.3)


def test_no_crs_works_in_map_units() -> None:
    mask = np.zeros((60, 200), bool)
    mask[20:30, :] = True
    net = vectorize_array(mask)
    assert net.crs is None
    assert net.length_m[0] == pytest.approx(200, abs=1)
    assert net.lines[0].coords[0] == pytest.approx((0.5, 24.5), abs=1)


# --------------------------------------------------------------------------------------
# Done-when: real SpaceNet chip, synthetic scenes, model-like masks
# --------------------------------------------------------------------------------------


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
