"""Network stages the non-countryside settings share: street grids over the whole
scene, curved streets branching off the network, and divided highways with ramps.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import LineString

from roadseg.synthetic.elements import MAIN, MINOR, STREET, Line
from roadseg.synthetic.geometry import grow, polyline_length, resample_polyline
from roadseg.synthetic.network import NetworkBuilder


def scene_grid(
    net: NetworkBuilder,
    angle: float,
    block: tuple[float, float],
    widths: tuple[float, float],
    p_gap: float,
    gap: float = 8.0,
) -> None:
    """A street grid over the whole scene at ``angle`` with blocks ``block`` (px);
    a share ``p_gap`` of street pieces left out (T junctions, merged blocks)."""
    rng = net.rng
    c = np.array([net.w / 2, net.h / 2])
    reach = math.hypot(net.h, net.w) / 2 + 60
    ca, sa = math.cos(angle), math.sin(angle)
    axes = (np.array([ca, sa]), np.array([-sa, ca]))
    offs = []
    for size in block:
        k = np.arange(-reach // size - 1, reach // size + 2)
        o = (k + rng.uniform(0, 1)) * size + rng.uniform(-0.08, 0.08, len(k)) * size
        offs.append(o[np.abs(o) < reach])
    frame = shapely.box(*net.bounds)
    runs: list[tuple[np.ndarray, float]] = []
    for fam in range(2):
        normal, along = axes[fam], axes[1 - fam]
        cross = offs[1 - fam]
        stops = np.concatenate([[-reach], cross, [reach]])
        for o in offs[fam]:
            w = float(rng.uniform(*widths))
            keep = rng.random(len(stops) - 1) > p_gap
            i = 0
            while i < len(keep):
                if not keep[i]:
                    i += 1
                    continue
                j = i
                while j + 1 < len(keep) and keep[j + 1]:
                    j += 1
                a = c + normal * o + along * stops[i]
                b = c + normal * o + along * stops[j + 1]
                part = LineString([a, b]).intersection(frame)
                if isinstance(part, LineString) and part.length >= 25:
                    runs.append((np.asarray(part.coords), w))
                i = j + 1
    connect_streets(net, runs, gap)


def connect_streets(net: NetworkBuilder, runs: list[tuple[np.ndarray, float]], gap: float) -> None:
    """Add straight streets so none floats unconnected (longest first, then any that
    meets an accepted road)."""
    runs.sort(key=lambda r: -polyline_length(r[0]))
    pending = list(range(len(runs)))
    first = not net.roads
    while pending:
        left = []
        for i in pending:
            verdict = net._grid_street(*runs[i], need_touch=not first, gap=gap)
            first = first and verdict is False
            if verdict is None:
                left.append(i)
        if len(left) == len(pending):
            break
        pending = left


def through_road(
    net: NetworkBuilder, width: float, kind: int = MAIN, amp: float = 0.2, gap: float = 14.0
) -> np.ndarray | None:
    """One road across the whole scene through a random inner point (crossing others)."""
    rng = net.rng
    p = np.array([rng.uniform(0.15, 0.85) * net.w, rng.uniform(0.15, 0.85) * net.h])
    theta = rng.uniform(0, 2 * math.pi)
    length = 3 * (net.h + net.w)
    fwd = grow(rng, p, theta, length, net.bounds, amp=amp, lam=(500.0, 2500.0))
    bwd = grow(rng, p, theta + math.pi, length, net.bounds, amp=amp, lam=(500.0, 2500.0))
    pts = np.vstack([bwd[::-1], fwd[1:]])
    res = net.place(pts, width, start_zone=None, p_cross=1.0, gap=gap, min_len=60)
    if res is None:
        return None
    net.junctions += res[1]
    net.add_road(Line(res[0], width, kind=kind, **net._road_look(kind, width)))
    return res[0]


def curvy_streets(
    net: NetworkBuilder,
    target: float,
    widths: tuple[float, float],
    amp: tuple[float, float],
    length: tuple[float, float],
    kind: int = STREET,
    gap: float = 10.0,
    tries: int = 400,
) -> None:
    """Curved streets branching off existing roads until ``target`` road share."""
    rng = net.rng
    for _ in range(tries):
        if net.road_area >= target * net.h * net.w or not net.roads:
            break
        road = net.roads[rng.integers(len(net.roads))]
        pts, tan = resample_polyline(road.pts, 20.0, rng.uniform(0, 20))
        inside = (pts[:, 0] > 0) & (pts[:, 0] < net.w) & (pts[:, 1] > 0) & (pts[:, 1] < net.h)
        if not inside.any():
            continue
        i = int(rng.choice(np.nonzero(inside)[0]))
        side = rng.choice([-1.0, 1.0])
        nrm = np.array([-tan[i, 1], tan[i, 0]]) * side
        theta = math.atan2(nrm[1], nrm[0]) + rng.normal(0, 0.15)
        width = float(rng.uniform(*widths))
        q = pts[i] + nrm * 0.5
        line = grow(
            rng,
            q,
            theta,
            rng.uniform(*length),
            net.bounds,
            step=6.0,
            amp=rng.uniform(*amp),
            lam=(120.0, 420.0),
        )
        zone = (q[0], q[1], width / 2 + road.width / 2 + gap + 4)
        res = net.place(line, width, start_zone=zone, p_cross=0.15, gap=gap, min_len=50)
        if res is None:
            continue
        net.junctions += [(q[0], q[1], max(width, road.width), False), *res[1]]
        net.add_road(Line(res[0], width, kind=kind, **net._road_look(kind, width)))


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    t = np.linspace(0, 1, 40)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def highway_stage(net: NetworkBuilder) -> None:
    """One or two divided highways (two one-way carriageways of 2-4 lanes with a
    median) across the scene, crossing roads and diamond interchanges with ramps."""
    rng = net.rng
    n = 1 + int(rng.random() < 0.3 * net.h * net.w / 1024**2)
    for _ in range(n):
        lanes = int(rng.choice([2, 2, 3, 4]))
        cw = lanes * rng.uniform(7.0, 7.6) + rng.uniform(3, 6)  # carriageway with shoulders
        median = rng.uniform(4, 26)
        p = np.array([rng.uniform(0.25, 0.75) * net.w, rng.uniform(0.25, 0.75) * net.h])
        theta = rng.uniform(0, math.pi)
        length = 3 * (net.h + net.w)
        amp = rng.uniform(0.0, 0.12)
        fwd = grow(rng, p, theta, length, net.bounds, amp=amp, lam=(1500.0, 4000.0))
        bwd = grow(rng, p, theta + math.pi, length, net.bounds, amp=amp, lam=(1500.0, 4000.0))
        centre = LineString(np.vstack([bwd[::-1], fwd[1:]]))
        off = median / 2 + cw / 2
        hw_look = net._road_look(MAIN, cw)
        hw_look.update(marks=True, lanes=lanes, side=0.0, side_gap=0.0)
        for s in (-1, 1):
            cl = centre.offset_curve(s * off, join_style="round")
            if cl.is_empty or not isinstance(cl, LineString):
                continue
            net.add_road(Line(np.asarray(cl.coords), cw, kind=MAIN, **hw_look))
        # Interchanges: crossing roads with four ramps.
        total = centre.length
        for frac in rng.uniform(0.2, 0.8, int(rng.integers(1, 3))):
            s0 = frac * total
            c = np.asarray(centre.interpolate(s0).coords[0])
            c2 = np.asarray(centre.interpolate(s0 + 1.0).coords[0])
            t = (c2 - c) / max(np.hypot(*(c2 - c)), 1e-9)
            nv = np.array([-t[1], t[0]])
            xw = rng.uniform(14, 22)
            cross = np.array([c - nv * 2 * (net.h + net.w), c + nv * 2 * (net.h + net.w)])
            clipped = LineString(cross).intersection(shapely.box(*net.bounds))
            if not isinstance(clipped, LineString) or clipped.is_empty:
                continue
            look = net._road_look(MAIN, xw)
            net.add_road(Line(np.asarray(clipped.coords), xw, kind=MAIN, **look))
            ramp_w = rng.uniform(9, 12)
            d = rng.uniform(160, 260)
            e = off + cw / 2 + rng.uniform(40, 80)
            for sn in (-1, 1):
                for st in (-1, 1):
                    p0 = c + t * st * d + nv * sn * (off + cw / 2 - ramp_w / 2)
                    p3 = c + nv * sn * e + t * st * (xw / 2 - 1)
                    p1 = p0 - t * st * d * 0.45 + nv * sn * (e - off) * 0.2
                    p2 = p3 + t * st * d * 0.4
                    rlook = net._road_look(MINOR, ramp_w)
                    rlook.update(marks=False, lanes=0, side=0.0, side_gap=0.0)
                    net.add_road(Line(_bezier(p0, p1, p2, p3), ramp_w, kind=MINOR, **rlook))
