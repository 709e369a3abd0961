"""Lines: the cleaned graph as a :class:`~roadseg.vectorize.options.RoadNetwork`
(:func:`build_network`): nodes numbered, edges oriented, simplified with
Douglas-Peucker in metres (:func:`douglas_peucker`), sent to map coordinates through
the affine transform (pixel centres at +0.5), with lengths, widths and
probabilities."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from affine import Affine
from shapely.geometry import LineString

from roadseg.geo import GroundScale
from roadseg.vectorize.graph import PixelGraph
from roadseg.vectorize.options import RoadNetwork, VectorizeOptions


def douglas_peucker(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the vertices that Douglas-Peucker keeps (first and last always).

    Args:
        points: (n, 2) coordinates in a metric frame.
        tolerance: largest allowed distance of a dropped vertex from the line.
    """
    n = len(points)
    if n <= 2 or tolerance <= 0:
        return np.arange(n)
    keep = np.zeros(n, bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        seg = points[i + 1 : j]
        a, b = points[i], points[j]
        d = b - a
        norm = math.hypot(d[0], d[1])
        if norm == 0:
            dist = np.hypot(seg[:, 0] - a[0], seg[:, 1] - a[1])
        else:
            dist = np.abs(d[0] * (seg[:, 1] - a[1]) - d[1] * (seg[:, 0] - a[0])) / norm
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            m = i + 1 + k
            keep[m] = True
            stack.append((i, m))
            stack.append((m, j))
    return np.flatnonzero(keep)


def build_network(
    g: PixelGraph, options: VectorizeOptions, transform: Affine, crs: Any
) -> RoadNetwork:
    """Number the nodes, orient and simplify the edges, and build the lines."""
    nodes = sorted(g.inc, key=lambda n: (g.pos[n][0], g.pos[n][1]))
    number = {n: i for i, n in enumerate(nodes)}
    items = []
    for edge in g.edges.values():
        u, v = number[edge.u], number[edge.v]
        rc, hw, pr = edge.rc, edge.hw, edge.prob
        if (u, tuple(rc[0])) > (v, tuple(rc[-1])):
            u, v = v, u
            rc, hw = rc[::-1], hw[::-1]
            pr = None if pr is None else pr[::-1]
        items.append((u, v, tuple(rc[1]) if len(rc) > 1 else (), len(rc), rc, hw, pr))
    items.sort(key=lambda t: (t[0], t[1], t[2], t[3]))
    lines = []
    length = np.zeros(len(items))
    width = np.full(len(items), np.nan)
    pmean = np.full(len(items), np.nan) if g.with_prob else None
    pmin = np.full(len(items), np.nan) if g.with_prob else None
    starts = np.zeros(len(items), np.int64)
    stops = np.zeros(len(items), np.int64)
    for i, (u, v, _, _, rc, hw, pr) in enumerate(items):
        keep = _simplify(g.scale, rc, options.simplify_m)
        sub = rc[keep]
        x, y = _to_map(transform, sub)
        lines.append(LineString(np.stack([x, y], axis=1)))
        length[i] = g.scale.length(sub)
        finite = hw[np.isfinite(hw)]
        if finite.size:
            width[i] = 2.0 * float(np.median(finite))
        if pr is not None and pmean is not None and pmin is not None:
            fin = pr[np.isfinite(pr)]
            if fin.size:
                pmean[i] = float(fin.mean())
                pmin[i] = float(fin.min())
        starts[i], stops[i] = u, v
    pos = np.array([g.pos[n] for n in nodes]).reshape(-1, 2)
    nx, ny = _to_map(transform, pos)
    degree = np.array([g.degree(n) for n in nodes], np.int64)
    return RoadNetwork(
        lines=tuple(lines),
        length_m=length,
        width_m=width,
        start_node=starts,
        end_node=stops,
        prob_mean=pmean,
        prob_min=pmin,
        nodes=np.stack([nx, ny], axis=1) if len(nodes) else np.zeros((0, 2)),
        node_degree=degree,
        crs=crs,
        transform=transform,
    )


def _simplify(scale: GroundScale, rc: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the vertices Douglas-Peucker keeps, in a local metric frame.

    GEOS does the work (the vertex index rides along as Z); the same as
    :func:`douglas_peucker`, in C.
    """
    if tolerance <= 0 or len(rc) <= 2:
        return np.arange(len(rc))
    pts = scale.to_metres(rc, rc[len(rc) // 2])
    line = shapely.linestrings(np.column_stack([pts, np.arange(len(rc), dtype=float)]))
    kept = shapely.get_coordinates(
        shapely.simplify(line, tolerance, preserve_topology=False), include_z=True
    )
    closed = np.array_equal(rc[0], rc[-1])
    if len(kept) < (4 if closed else 2):
        return np.arange(len(rc))
    return kept[:, 2].astype(np.int64)


def _to_map(transform: Affine, rc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = rc[:, 0] + 0.5
    c = rc[:, 1] + 0.5
    x = transform.a * c + transform.b * r + transform.c
    y = transform.d * c + transform.e * r + transform.f
    return x, y
