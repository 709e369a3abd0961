"""Geometric primitives on polylines in pixel coordinates: pixel boxes, densifying,
cutting, resampling, wandering growth, point-to-segment distances, and the growing
spatial index of segments that the road network is built against.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import LineString


def pixel_box(x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Inclusive pixel index ranges (col_lo, col_hi, row_lo, row_hi) whose centres
    lie in the given coordinate boxes: (n, 4) int64."""
    return np.stack(
        [
            np.ceil(x0 - 0.5),
            np.floor(x1 - 0.5),
            np.ceil(y0 - 0.5),
            np.floor(y1 - 0.5),
        ],
        axis=1,
    ).astype(np.int64)


def densify(pts: np.ndarray, max_len: float) -> np.ndarray:
    """Insert vertices so that no segment is longer than ``max_len`` (same geometry)."""
    seg = np.diff(pts, axis=0)
    ln = np.hypot(seg[:, 0], seg[:, 1])
    n = np.maximum(1, np.ceil(ln / max_len).astype(int))
    if (n == 1).all():
        return pts
    out = [pts[:1]]
    for i, k in enumerate(n):
        t = (np.arange(1, k + 1) / k)[:, None]
        out.append(pts[i] + t * seg[i])
    return np.concatenate(out)


def point_seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (n, m) from points p (n, 2) to segments a->b (m, 2)."""
    e = b - a
    len2 = np.maximum((e * e).sum(axis=1), 1e-12)
    wx = p[:, None, 0] - a[None, :, 0]
    wy = p[:, None, 1] - a[None, :, 1]
    t = np.clip((wx * e[None, :, 0] + wy * e[None, :, 1]) / len2[None, :], 0.0, 1.0)
    qx = wx - t * e[None, :, 0]
    qy = wy - t * e[None, :, 1]
    return np.sqrt(qx * qx + qy * qy)


def _wander(
    rng: np.random.Generator, n: int, step: float, amp: float, lam: tuple[float, float]
) -> np.ndarray:
    """Smooth bounded heading deviations (radians) at ``n`` steps: a sum of 3 sines."""
    if amp <= 0 or n == 0:
        return np.zeros(n)
    s = np.arange(n) * step
    w = rng.uniform(0.3, 1.0, 3)
    w *= amp / w.sum()
    out = np.zeros(n)
    for wi in w:
        out += wi * np.sin(2 * math.pi * s / rng.uniform(*lam) + rng.uniform(0, 2 * math.pi))
    return out


def grow(
    rng: np.random.Generator,
    start: np.ndarray,
    theta: float,
    length: float,
    bounds: tuple[float, float, float, float],
    *,
    step: float = 8.0,
    amp: float = 0.0,
    lam: tuple[float, float] = (300.0, 1500.0),
) -> np.ndarray:
    """A wandering polyline from ``start`` in direction ``theta``, cut just after it
    leaves ``bounds`` (x0, y0, x1, y1)."""
    n = max(1, int(length / step))
    ang = theta + _wander(rng, n, step, amp, lam)
    ang -= ang[0] - theta  # start exactly in the requested direction
    steps = step * np.column_stack([np.cos(ang), np.sin(ang)])
    pts = np.vstack([start, start + np.cumsum(steps, axis=0)])
    x0, y0, x1, y1 = bounds
    out = (pts[:, 0] < x0) | (pts[:, 0] > x1) | (pts[:, 1] < y0) | (pts[:, 1] > y1)
    out[0] = False
    if out.any():
        pts = pts[: int(np.argmax(out)) + 1]
    return pts


def cut(pts: np.ndarray, along: float) -> np.ndarray:
    """The polyline up to arc length ``along`` (ending exactly there)."""
    seg = np.diff(pts, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
    i = int(np.searchsorted(cum, along, side="right")) - 1
    i = min(max(i, 0), len(seg) - 1)
    ln = cum[i + 1] - cum[i]
    t = 0.0 if ln <= 0 else (along - cum[i]) / ln
    end = pts[i] + min(max(t, 0.0), 1.0) * seg[i]
    return np.vstack([pts[: i + 1], end[None]])


def polyline_length(pts: np.ndarray) -> float:
    """Length of a polyline in px."""
    seg = np.diff(pts, axis=0)
    return float(np.hypot(seg[:, 0], seg[:, 1]).sum())


def resample_polyline(
    pts: np.ndarray, spacing: float, offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` px along a polyline and the unit tangents there."""
    seg = np.diff(pts, axis=0)
    ln = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(ln)])
    s = np.arange(offset, cum[-1], spacing)
    if not s.size:
        return np.zeros((0, 2)), np.zeros((0, 2))
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    t = (s - cum[i]) / np.maximum(ln[i], 1e-12)
    p = pts[i] + t[:, None] * seg[i]
    tan = seg[i] / np.maximum(ln[i], 1e-12)[:, None]
    return p, tan


def line_parts(geom: shapely.Geometry) -> list[LineString]:
    """The non-empty LineStrings of a (multi-)line geometry, e.g. a clipped road."""
    if geom.is_empty:
        return []
    if isinstance(geom, LineString):
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, LineString) and not g.is_empty]


class SegmentIndex:
    """Growing spatial grid of road and river segments, used while building roads."""

    def __init__(self, cell: float = 64.0) -> None:
        self.cell = cell
        self.cells: dict[tuple[int, int], list[int]] = {}
        self.n = 0
        self.a = np.zeros((1024, 2))
        self.b = np.zeros((1024, 2))
        self.hw = np.zeros(1024)
        self.line = np.zeros(1024, dtype=np.int64)
        self.max_hw = 0.0

    def add(self, pts: np.ndarray, line_id: int, hw: float) -> None:
        """Register the segments of a polyline."""
        k = len(pts) - 1
        while self.n + k > len(self.hw):
            for name in ("a", "b", "hw", "line"):
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.zeros_like(arr)]))
        sl = slice(self.n, self.n + k)
        self.a[sl] = pts[:-1]
        self.b[sl] = pts[1:]
        self.hw[sl] = hw
        self.line[sl] = line_id
        self.max_hw = max(self.max_hw, hw)
        lo = np.floor((np.minimum(pts[:-1], pts[1:]) - hw) / self.cell).astype(int)
        hi = np.floor((np.maximum(pts[:-1], pts[1:]) + hw) / self.cell).astype(int)
        for i in range(k):
            for cx in range(lo[i, 0], hi[i, 0] + 1):
                for cy in range(lo[i, 1], hi[i, 1] + 1):
                    self.cells.setdefault((cx, cy), []).append(self.n + i)
        self.n += k

    def near(self, pts: np.ndarray, pad: float) -> np.ndarray:
        """Ids of segments registered in cells within ``pad`` of the points' hull cells."""
        lo = np.floor((pts.min(axis=0) - pad) / self.cell).astype(int)
        hi = np.floor((pts.max(axis=0) + pad) / self.cell).astype(int)
        found: set[int] = set()
        for cx in range(lo[0], hi[0] + 1):
            for cy in range(lo[1], hi[1] + 1):
                ids = self.cells.get((cx, cy))
                if ids:
                    found.update(ids)
        return np.fromiter(found, dtype=np.int64, count=len(found))

    def hits(self, pts: np.ndarray, chunk: int = 48) -> list[tuple[float, int, float]]:
        """Crossings of a polyline with registered segments.

        Returns:
            (distance along the polyline, segment id, crossing angle in radians),
            sorted by distance; repeated hits of one line within 1 px are merged.
        """
        seg = np.diff(pts, axis=0)
        ln = np.hypot(seg[:, 0], seg[:, 1])
        cum = np.concatenate([[0.0], np.cumsum(ln)])
        out: list[tuple[float, int, float]] = []
        for c0 in range(0, len(seg), chunk):
            p0 = pts[:-1][c0 : c0 + chunk]
            d = seg[c0 : c0 + chunk]
            cand = self.near(pts[c0 : c0 + chunk + 1], 1.0)
            if not cand.size:
                continue
            q0 = self.a[cand]
            s = self.b[cand] - q0
            den = d[:, None, 0] * s[None, :, 1] - d[:, None, 1] * s[None, :, 0]
            wx = q0[None, :, 0] - p0[:, None, 0]
            wy = q0[None, :, 1] - p0[:, None, 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (wx * s[None, :, 1] - wy * s[None, :, 0]) / den
                u = (wx * d[:, None, 1] - wy * d[:, None, 0]) / den
            ok = (np.abs(den) > 1e-9) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
            for i, j in zip(*np.nonzero(ok), strict=True):
                gi = c0 + i
                along = cum[gi] + t[i, j] * ln[gi]
                sj = s[j]
                cosang = abs(d[i] @ sj) / max(ln[gi] * math.hypot(sj[0], sj[1]), 1e-12)
                out.append((float(along), int(cand[j]), math.acos(min(1.0, cosang))))
        out.sort()
        merged: list[tuple[float, int, float]] = []
        for h in out:
            if merged and self.line[merged[-1][1]] == self.line[h[1]] and h[0] - merged[-1][0] < 1:
                continue
            merged.append(h)
        return merged

    def clearance(self, pts: np.ndarray, pad: float) -> np.ndarray:
        """For each point, min over nearby segments of (distance - half width); inf if none."""
        out = np.full(len(pts), np.inf)
        if self.n == 0 or not len(pts):
            return out
        for c0 in range(0, len(pts), 128):
            p = pts[c0 : c0 + 128]
            cand = self.near(p, pad + self.max_hw)
            if not cand.size:
                continue
            dist = point_seg_dist(p, self.a[cand], self.b[cand]) - self.hw[cand][None, :]
            out[c0 : c0 + 128] = dist.min(axis=1)
        return out
