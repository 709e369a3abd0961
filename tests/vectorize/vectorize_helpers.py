"""Helpers shared by the tests of roadseg.vectorize: masks from centerlines,
degradation like a model's output, topology counts, network comparison."""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from shapely.geometry import LineString, Point

from roadseg.vector_metrics import centerline_metrics, find_junctions
from roadseg.vectorize import RoadNetwork

UTM = "EPSG:32633"
GSD = 0.5
TRANSFORM = Affine(GSD, 0, 500000.0, 0, -GSD, 5500000.0)


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


def scores(net: RoadNetwork, truth_px: list[LineString], buffer_m: float = 2.0):
    return centerline_metrics(list(net.lines), to_map(truth_px), buffer_m, UTM)
