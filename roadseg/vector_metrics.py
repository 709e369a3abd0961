"""Scores for road networks against vector ground truth.

Centerline metrics (Wiedemann, Heipke, Mayer & Jamet, "Empirical evaluation of
automatically extracted road axes", 1998), with a buffer of ``buffer_m`` metres
around each network:

* completeness = length of the truth within the buffer of the prediction /
  length of the truth (how much of the real network was found);
* correctness = length of the prediction within the buffer of the truth /
  length of the prediction (how much of what was found is real);
* quality = matched prediction / (prediction + unmatched truth), i.e.
  TP / (TP + FP + FN) in lengths.

A ratio whose denominator is zero is 1.0 (nothing to miss, or no false claims),
the rule of :mod:`roadseg.metrics`.

APLS (Average Path Length Similarity; Van Etten, Lindenbaum & Bacastow,
"SpaceNet: A Remote Sensing Dataset and Challenge Series", 2018) compares routes:
control points are placed at every junction and end and every ``interval_m``
(50 m) along the truth; each is projected onto the prediction when a line passes
within ``buffer_m`` (4 m); for every pair of control points connected in the
truth, the penalty is ``min(1, |L_truth - L_pred| / L_truth)`` for the shortest
path lengths, and 1 when a point has no projection or the prediction has no
path. One minus the mean penalty scores the truth against the prediction; the
same is done the other way round, and APLS is the harmonic mean of both. On
networks with more than 2000 control points, paths start from an evenly spaced
subset of 2000 of them (to every other point), which keeps the cost linear in the
network's size; the score is then an estimate.

Junction scores check topology where the centerline metrics cannot: a junction
of the truth (three or more line ends meeting, after snapping ends within
``snap_m``) is found when the prediction has a junction within ``radius_m``.

All measurements are made in metres: both line sets are reprojected to the UTM
zone of the truth's centre (GDAL through rasterio; scale error below 0.04 %),
whatever their CRS. With no CRS on either side the coordinates are taken to be
metres.

:func:`evaluate_centerlines` is the entry point for ``roadseg evaluate`` with
vector ground truth: it reads the truth (GeoJSON or GeoPackage) and the
prediction (a vector file, or a mask/probability raster that it vectorizes in
memory with :func:`roadseg.vectorize.extract_network`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from roadseg.errors import VectorError
from roadseg.geo import to_metric
from roadseg.vector_io import read_lines

__all__ = [
    "CenterlineScores",
    "JunctionScores",
    "NetworkEvaluation",
    "centerline_metrics",
    "junction_metrics",
    "find_junctions",
    "APLSScores",
    "apls",
    "evaluate_centerlines",
    "VECTOR_SUFFIXES",
]

#: File extensions read as vector ground truth or vector predictions.
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg")


@dataclass(frozen=True)
class CenterlineScores:
    """Completeness, correctness and quality of a network within a buffer."""

    completeness: float
    correctness: float
    quality: float
    buffer_m: float
    truth_length_m: float
    pred_length_m: float
    matched_truth_m: float
    matched_pred_m: float


@dataclass(frozen=True)
class JunctionScores:
    """How many junctions of each side have a junction of the other within a radius."""

    truth_junctions: int
    pred_junctions: int
    matched_truth: int
    matched_pred: int
    radius_m: float

    @property
    def recall(self) -> float:
        return self.matched_truth / self.truth_junctions if self.truth_junctions else 1.0

    @property
    def precision(self) -> float:
        return self.matched_pred / self.pred_junctions if self.pred_junctions else 1.0


@dataclass(frozen=True)
class APLSScores:
    """APLS and its two directions (see the module docstring)."""

    apls: float
    truth_to_pred: float
    pred_to_truth: float
    truth_pairs: int
    pred_pairs: int
    interval_m: float
    buffer_m: float


@dataclass(frozen=True)
class NetworkEvaluation:
    """Everything :func:`evaluate_centerlines` measured."""

    centerlines: CenterlineScores
    junctions: JunctionScores
    apls: APLSScores
    pred_lines: int
    truth_lines: int
    pred_from_raster: bool


def _ratio(num: float, den: float) -> float:
    return min(1.0, num / den) if den > 0 else 1.0


def _length_within(lines: BaseGeometry, area: BaseGeometry) -> float:
    return float(shapely.intersection(lines, area).length) if not lines.is_empty else 0.0


def centerline_metrics(
    pred_lines: Sequence[BaseGeometry],
    truth_lines: Sequence[BaseGeometry],
    buffer_m: float = 2.0,
    crs: Any = None,
    *,
    truth_crs: Any = None,
) -> CenterlineScores:
    """Completeness, correctness and quality of ``pred_lines`` against ``truth_lines``.

    Args:
        pred_lines: predicted centerlines (LineStrings) in ``crs``.
        truth_lines: true centerlines in ``truth_crs`` (default: ``crs``).
        buffer_m: buffer width on each side, metres.
        crs: CRS of the predictions (rasterio CRS or anything it accepts); None
            means both sets are in metres already.
        truth_crs: CRS of the truth when it differs.

    Raises:
        VectorError: a negative buffer, or CRSs that cannot be reconciled.
    """
    if not (buffer_m >= 0 and math.isfinite(buffer_m)):
        raise VectorError(f"buffer must be a non-negative number of metres, got {buffer_m}")
    pred_crs = _crs(crs)
    tcrs = _crs(truth_crs) if truth_crs is not None else pred_crs
    pred_m, truth_m = to_metric([(pred_lines, pred_crs), (truth_lines, tcrs)])
    pred = shapely.union_all(np.asarray(pred_m, dtype=object)) if pred_m else LineString()
    truth = shapely.union_all(np.asarray(truth_m, dtype=object)) if truth_m else LineString()
    pred_len, truth_len = float(pred.length), float(truth.length)
    matched_truth = _length_within(truth, pred.buffer(buffer_m)) if pred_len else 0.0
    matched_pred = _length_within(pred, truth.buffer(buffer_m)) if truth_len else 0.0
    return CenterlineScores(
        completeness=_ratio(matched_truth, truth_len),
        correctness=_ratio(matched_pred, pred_len),
        quality=_ratio(matched_pred, pred_len + truth_len - matched_truth),
        buffer_m=buffer_m,
        truth_length_m=truth_len,
        pred_length_m=pred_len,
        matched_truth_m=matched_truth,
        matched_pred_m=matched_pred,
    )


def _crs(crs: Any) -> Any:
    if crs is None:
        return None
    from rasterio.crs import CRS

    return crs if isinstance(crs, CRS) else CRS.from_user_input(crs)


def _noded(geoms: list[BaseGeometry], snap_m: float) -> BaseGeometry:
    """Lines split wherever they cross or touch, after closing gaps up to ``snap_m``.

    Each line end within ``snap_m`` of another line moves onto the nearest point of
    that line, and that point is inserted into the other line as a vertex: a T
    whose stem stops short of the bar (between two of its vertices) is then noded.
    Only ends move, so two lines never trade places.
    """
    lines = [np.asarray(g.coords, float)[:, :2].copy() for g in geoms]
    tree = shapely.STRtree(geoms)
    inserts: dict[int, list[np.ndarray]] = {}
    for i, g in enumerate(geoms):
        if g.is_closed:
            continue  # a ring's first point is arbitrary, not a road end
        for at in (0, -1):
            end = shapely.Point(lines[i][at])
            near = [j for j in tree.query(end, predicate="dwithin", distance=snap_m) if j != i]
            if not near:
                continue
            j = min(near, key=lambda k: (geoms[k].distance(end), k))
            if geoms[j].distance(end) == 0:
                continue
            target = shapely.line_interpolate_point(geoms[j], geoms[j].project(end))
            lines[i][at] = shapely.get_coordinates(target)[0]
            inserts.setdefault(j, []).append(lines[i][at].copy())
    out = []
    for i, coords in enumerate(lines):
        line = shapely.linestrings(coords)
        if i in inserts:
            line = shapely.snap(line, shapely.multipoints(np.array(inserts[i])), snap_m)
        out.append(line)
    return shapely.union_all(np.asarray(out, dtype=object))


def find_junctions(lines: Sequence[BaseGeometry], snap_m: float = 0.5) -> np.ndarray:
    """Points where three or more line ends meet, shape ``(k, 2)``, in the lines' units.

    Line ends within ``snap_m`` of another line are snapped onto it first, so a T
    drawn with the stem stopping just short of the bar still counts. Lines are
    then noded (split where they cross or touch) and the ends of the pieces are
    grouped within ``snap_m``; a group of three or more ends is a junction.
    """
    geoms = [g for g in lines if not g.is_empty]
    if not geoms:
        return np.zeros((0, 2))
    noded = _noded(geoms, snap_m)
    pieces = list(getattr(noded, "geoms", [noded]))
    ends = []
    for p in pieces:
        coords = np.asarray(p.coords)
        if len(coords) >= 2:
            ends.append(coords[0, :2])
            ends.append(coords[-1, :2])
    if not ends:
        return np.zeros((0, 2))
    pts = np.asarray(ends)
    pairs = cKDTree(pts).query_pairs(snap_m, output_type="ndarray")
    graph = sparse.coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(pts), len(pts))
    )
    _, label = csgraph.connected_components(graph, directed=False)
    count = np.bincount(label)
    cx = np.bincount(label, pts[:, 0]) / count
    cy = np.bincount(label, pts[:, 1]) / count
    keep = count >= 3
    return np.stack([cx[keep], cy[keep]], axis=1)


def junction_metrics(
    pred_lines: Sequence[BaseGeometry],
    truth_lines: Sequence[BaseGeometry],
    radius_m: float = 4.0,
    crs: Any = None,
    *,
    truth_crs: Any = None,
    snap_m: float = 0.5,
) -> JunctionScores:
    """Junctions of the truth found in the prediction (and the converse) within
    ``radius_m`` metres. See :func:`find_junctions`."""
    pred_crs = _crs(crs)
    tcrs = _crs(truth_crs) if truth_crs is not None else pred_crs
    pred_m, truth_m = to_metric([(pred_lines, pred_crs), (truth_lines, tcrs)])
    pj = find_junctions(pred_m, snap_m)
    tj = find_junctions(truth_m, snap_m)
    matched_t = matched_p = 0
    if len(pj) and len(tj):
        dt, _ = cKDTree(pj).query(tj)
        dp, _ = cKDTree(tj).query(pj)
        matched_t = int(np.count_nonzero(dt <= radius_m))
        matched_p = int(np.count_nonzero(dp <= radius_m))
    return JunctionScores(len(tj), len(pj), matched_t, matched_p, radius_m)


class _RouteGraph:
    """An undirected graph of line pieces (metres) for APLS."""

    def __init__(self, lines: Sequence[BaseGeometry], snap_m: float) -> None:
        self.pieces: list[LineString] = []
        self.ends: list[tuple[int, int]] = []
        self.points = np.zeros((0, 2))
        geoms = [g for g in lines if not g.is_empty and g.length > 0]
        if not geoms:
            return
        noded = _noded(geoms, snap_m)
        pieces = [p for p in getattr(noded, "geoms", [noded]) if p.length > 0]
        ends = np.array([[p.coords[0][:2], p.coords[-1][:2]] for p in pieces]).reshape(-1, 2)
        pairs = cKDTree(ends).query_pairs(snap_m, output_type="ndarray")
        g = sparse.coo_matrix(
            (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(ends), len(ends))
        )
        _, label = csgraph.connected_components(g, directed=False)
        count = np.bincount(label)
        self.points = np.stack(
            [np.bincount(label, ends[:, 0]) / count, np.bincount(label, ends[:, 1]) / count], 1
        )
        self.pieces = pieces
        self.ends = [(int(label[2 * k]), int(label[2 * k + 1])) for k in range(len(pieces))]

    def with_points(
        self, at: dict[int, list[float]]
    ) -> tuple[np.ndarray, list[tuple[int, int, float]], dict[tuple[int, float], int]]:
        """Nodes and weighted edges after splitting pieces at the given distances.

        Returns:
            (node positions, edges (u, v, metres), node of each (piece, distance)).
        """
        pts = [tuple(p) for p in self.points]
        edges: list[tuple[int, int, float]] = []
        node_at: dict[tuple[int, float], int] = {}
        for k, piece in enumerate(self.pieces):
            u, v = self.ends[k]
            stops = sorted({d for d in at.get(k, []) if 0.0 < d < piece.length})
            chain = [u]
            for d in stops:
                q = piece.interpolate(d)
                pts.append((q.x, q.y))
                chain.append(len(pts) - 1)
                node_at[(k, d)] = len(pts) - 1
            chain.append(v)
            marks = [0.0, *stops, piece.length]
            for a, b, da, db in zip(chain[:-1], chain[1:], marks[:-1], marks[1:], strict=True):
                edges.append((a, b, db - da))
            node_at[(k, 0.0)] = u
            node_at[(k, piece.length)] = v
        return np.asarray(pts, float).reshape(-1, 2), edges, node_at


def _distances(n: int, edges: list[tuple[int, int, float]], sources: np.ndarray) -> np.ndarray:
    if not edges:
        out = np.full((len(sources), n), np.inf)
        out[np.arange(len(sources)), sources] = 0.0
        return out
    e = np.asarray(edges, float)
    g = sparse.coo_matrix((e[:, 2], (e[:, 0].astype(int), e[:, 1].astype(int))), shape=(n, n))
    return csgraph.dijkstra(g.tocsr(), directed=False, indices=sources)


def _apls_one_way(
    truth: _RouteGraph,
    pred: _RouteGraph,
    interval_m: float,
    buffer_m: float,
    max_sources: int = 2000,
) -> tuple[float, int]:
    """1 - mean penalty over the connected pairs of the truth's control points."""
    # Control points of the truth: its nodes plus every interval along each piece.
    at: dict[int, list[float]] = {
        k: list(np.arange(interval_m, p.length, interval_m)) for k, p in enumerate(truth.pieces)
    }
    t_pts, t_edges, _ = truth.with_points(at)
    n_t = len(t_pts)
    if n_t < 2:
        return 1.0, 0
    # Project each control point onto the prediction (within the buffer).
    proj: list[tuple[int, float] | None] = [None] * n_t
    if pred.pieces:
        ptree = shapely.STRtree(pred.pieces)
        pts = shapely.points(t_pts)
        near_idx = ptree.nearest(pts)
        for i, (pt, k) in enumerate(zip(pts, near_idx, strict=True)):
            piece = pred.pieces[int(k)]
            if piece.distance(pt) <= buffer_m:
                proj[i] = (int(k), float(piece.project(pt)))
    by_piece: dict[int, list[float]] = {}
    for item in proj:
        if item is not None:
            by_piece.setdefault(item[0], []).append(item[1])
    p_pts, p_edges, node_at = pred.with_points(by_piece)
    mapped = np.full(n_t, -1, np.int64)
    for i, item in enumerate(proj):
        if item is not None:
            k, d = item
            length = pred.pieces[k].length
            mapped[i] = node_at[(k, 0.0 if d <= 0.0 else (length if d >= length else d))]
    # Path sources: every control point, or an evenly spaced subset of them on
    # large networks (the cost is sources x points); pairs are (source, any other).
    if n_t <= max_sources:
        src = np.arange(n_t)
        iu, ju = np.triu_indices(n_t, 1)
        d_truth = _distances(n_t, t_edges, src)
        l_truth = d_truth[iu, ju]
    else:
        src = np.unique(np.linspace(0, n_t - 1, max_sources).round().astype(np.int64))
        d_truth = _distances(n_t, t_edges, src)
        r, ju = np.nonzero(np.ones((src.size, n_t), bool))
        iu = src[r]
        l_truth = d_truth[r, ju]
    del d_truth
    connected = np.isfinite(l_truth) & (l_truth > 0)
    iu, ju, l_truth = iu[connected], ju[connected], l_truth[connected]
    if iu.size == 0:
        return 1.0, 0
    penalty = np.ones(iu.size)
    ok = (mapped[iu] >= 0) & (mapped[ju] >= 0)
    if ok.any() and len(p_pts):
        sources = np.unique(mapped[iu[ok]])
        d_pred = _distances(len(p_pts), p_edges, sources)
        rows = np.searchsorted(sources, mapped[iu[ok]])
        l_pred = d_pred[rows, mapped[ju[ok]]]
        with np.errstate(invalid="ignore"):
            penalty[ok] = np.minimum(1.0, np.abs(l_truth[ok] - l_pred) / l_truth[ok])
        penalty[np.flatnonzero(ok)[~np.isfinite(l_pred)]] = 1.0
    return float(1.0 - penalty.mean()), int(iu.size)


def apls(
    pred_lines: Sequence[BaseGeometry],
    truth_lines: Sequence[BaseGeometry],
    crs: Any = None,
    *,
    truth_crs: Any = None,
    interval_m: float = 50.0,
    buffer_m: float = 4.0,
    snap_m: float = 0.5,
) -> APLSScores:
    """APLS of a predicted network against the truth (see the module docstring).

    Args:
        pred_lines, truth_lines: LineStrings in ``crs`` and ``truth_crs``.
        crs, truth_crs: as for :func:`centerline_metrics`.
        interval_m: spacing of control points along the lines (SpaceNet: 50 m).
        buffer_m: how far a control point may be from the other network (4 m).
        snap_m: line ends this close are one node.

    Raises:
        VectorError: CRSs that cannot be reconciled, or a non-positive interval.
    """
    if not interval_m > 0:
        raise VectorError(f"APLS interval must be positive, got {interval_m}")
    pred_crs = _crs(crs)
    tcrs = _crs(truth_crs) if truth_crs is not None else pred_crs
    pred_m, truth_m = to_metric([(pred_lines, pred_crs), (truth_lines, tcrs)])
    gt, gp = _RouteGraph(truth_m, snap_m), _RouteGraph(pred_m, snap_m)
    if not gt.pieces and not gp.pieces:
        return APLSScores(1.0, 1.0, 1.0, 0, 0, interval_m, buffer_m)
    if not gt.pieces or not gp.pieces:
        return APLSScores(0.0, 0.0, 0.0, 0, 0, interval_m, buffer_m)
    c_tp, n_tp = _apls_one_way(gt, gp, interval_m, buffer_m)
    c_pt, n_pt = _apls_one_way(gp, gt, interval_m, buffer_m)
    score = 0.0 if c_tp <= 0 or c_pt <= 0 else 2.0 / (1.0 / c_tp + 1.0 / c_pt)
    return APLSScores(score, c_tp, c_pt, n_tp, n_pt, interval_m, buffer_m)


def evaluate_centerlines(
    pred_path: str | os.PathLike[str],
    truth_path: str | os.PathLike[str],
    *,
    buffer_m: float = 2.0,
    junction_radius_m: float = 4.0,
    options: Any = None,
    layer: str | None = None,
) -> NetworkEvaluation:
    """Score a predicted road network against vector ground truth.

    Args:
        pred_path: a vector file (.gpkg, .geojson) of predicted lines, or a road
            mask / probability raster, vectorized in memory with ``options``.
        truth_path: GeoJSON or GeoPackage of true centerlines (LineStrings).
        buffer_m: buffer for completeness/correctness/quality, metres.
        junction_radius_m: how far a predicted junction may be from a true one.
        options: :class:`roadseg.vectorize.VectorizeOptions` for raster predictions.
        layer: GeoPackage layer of the truth (default: its first feature layer).

    Returns:
        A :class:`NetworkEvaluation`.

    Raises:
        VectorError: unreadable vector files or CRSs that cannot be reconciled.
        InvalidRasterError, UnsupportedRasterError: an unusable raster prediction.
    """
    truth = read_lines(truth_path, layer)
    pred_path = Path(pred_path)
    from_raster = pred_path.suffix.lower() not in VECTOR_SUFFIXES
    if from_raster:
        from roadseg.raster_io import gdal_env, open_raster
        from roadseg.vectorize import RasterSource, VectorizeOptions, extract_network

        opts = options if options is not None else VectorizeOptions()
        with gdal_env(), open_raster(pred_path) as ds:
            network = extract_network(RasterSource(ds, pred_path.name), opts)
        pred_lines, pred_crs = list(network.lines), network.crs
    else:
        pred = read_lines(pred_path)
        pred_lines, pred_crs = list(pred.lines), pred.crs
    truth_lines = list(truth.lines)
    scores = centerline_metrics(pred_lines, truth_lines, buffer_m, pred_crs, truth_crs=truth.crs)
    junctions = junction_metrics(
        pred_lines, truth_lines, junction_radius_m, pred_crs, truth_crs=truth.crs
    )
    routes = apls(pred_lines, truth_lines, pred_crs, truth_crs=truth.crs)
    return NetworkEvaluation(
        scores, junctions, routes, len(pred_lines), len(truth_lines), from_raster
    )
