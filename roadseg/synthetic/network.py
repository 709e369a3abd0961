"""The road network of one scene: rivers, towns, main roads, town street grids,
branching secondary and minor roads, roundabouts, and the dirt tracks (not roads) that
are placed against them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import shapely
from shapely.geometry import LineString

from roadseg.synthetic.elements import (
    ASPHALT,
    CONCRETE,
    DARK,
    GRAVEL,
    MAIN,
    MINOR,
    RING,
    SECONDARY,
    STREET,
    Line,
    Town,
    copy_line,
)
from roadseg.synthetic.geometry import (
    SegmentIndex,
    cut,
    densify,
    grow,
    line_parts,
    point_seg_dist,
    polyline_length,
    resample_polyline,
)
from roadseg.synthetic.palettes import WATER, Style

#: The layout extends this far (px) beyond the scene so roads leave it naturally.
_MARGIN = 48.0


class NetworkBuilder:
    """Builds the road network (and rivers, which roads must respect) of one scene."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, style: Style):
        self.rng = rng
        self.h = height
        self.w = width
        self.style = style
        m = _MARGIN
        self.bounds = (-m, -m, width + m, height + m)
        self.index = SegmentIndex()
        self.roads: list[Line] = []
        self.rivers: list[Line] = []
        self.junctions: list[tuple[float, float, float, bool]] = []  # x, y, max width, is X
        self.road_area = 0.0
        self.towns: list[Town] = []
        self.town_arr = np.zeros((0, 3))  # x, y, radius of the towns
        #: A setting's own road look (kind, width -> look); None: the countryside's.
        self.look_hook: Callable[[int, float], dict] | None = None

    # -- helpers -------------------------------------------------------------------

    def _in_scene_area(self, pts: np.ndarray, width: float) -> float:
        mid = (pts[:-1] + pts[1:]) / 2
        inside = (mid[:, 0] >= 0) & (mid[:, 0] <= self.w) & (mid[:, 1] >= 0) & (mid[:, 1] <= self.h)
        seg = np.diff(pts, axis=0)
        return float(np.hypot(seg[inside, 0], seg[inside, 1]).sum() * width)

    def _town_weight_at(self, p: np.ndarray) -> float:
        """Town weight at one point, with the towns as arrays built once."""
        t = self.town_arr
        if not len(t):
            return 0.0
        d = np.hypot(t[:, 0] - p[0], t[:, 1] - p[1])
        return float(max(0.0, min(1.0, float((1.05 - d / t[:, 2]).max()))) ** 0.6)

    def _line_id(self, k: int) -> int:
        """Index ids: roads are >= 0, rivers are negative."""
        return int(self.index.line[k])

    def _width_of(self, line_id: int) -> float:
        return self.roads[line_id].width if line_id >= 0 else self.rivers[-line_id - 1].width

    def _clear(
        self, pts: np.ndarray, hw: float, gap: float, zones: list[tuple[float, float, float]]
    ) -> bool:
        """True when the polyline keeps ``gap`` px from every registered segment except
        inside the exclusion ``zones`` (x, y, radius) around its junctions."""
        if polyline_length(pts) < 1:
            return False
        sample, _ = resample_polyline(pts, 3.0)
        sample = np.vstack([sample, pts[-1:]])
        if zones:
            z = np.array(zones)
            dz = np.hypot(sample[:, None, 0] - z[None, :, 0], sample[:, None, 1] - z[None, :, 1])
            sample = sample[(dz > z[None, :, 2]).all(axis=1)]
        if not sample.size:
            return True
        c = self.index.clearance(sample, hw + gap)
        return bool((c - hw >= gap).all())

    def add_road(self, line: Line) -> None:
        """Register a road: it joins the index and counts towards the road share."""
        lid = len(self.roads)
        self.roads.append(line)
        self.index.add(line.pts, lid, line.width / 2)
        self.road_area += self._in_scene_area(line.pts, line.width)

    def add_river(self, line: Line) -> None:
        """Register a river (index ids of rivers are negative)."""
        self.rivers.append(line)
        self.index.add(line.pts, -len(self.rivers), line.width / 2)

    def place(
        self,
        pts: np.ndarray,
        width: float,
        *,
        start_zone: tuple[float, float, float] | None,
        p_cross: float,
        gap: float = 12.0,
        min_len: float = 30.0,
    ) -> tuple[np.ndarray, list[tuple[float, float, float, bool]]] | None:
        """Resolve a candidate polyline against the network.

        Cuts it at the first road it meets (a T junction) unless it crosses it (an X
        junction, probability ``p_cross``); crosses rivers (bridges). Returns the
        polyline and its junctions, or None when it is too short, meets a road at a
        shallow angle or runs along an existing road or river.
        """
        hw = width / 2
        zones: list[tuple[float, float, float]] = [start_zone] if start_zone else []
        joints: list[tuple[float, float, float, bool]] = []
        end = None
        for along, k, ang in self.index.hits(pts):
            if along < 0.5:
                continue
            lid = self._line_id(k)
            other = self._width_of(lid)
            if ang < math.radians(30):
                return None
            q = cut(pts, along)[-1]
            rho = (hw + other / 2 + gap) / max(math.sin(ang), 0.5) + 2
            zones.append((q[0], q[1], rho))
            if lid < 0:
                continue
            crossing = self.rng.random() < p_cross
            joints.append((q[0], q[1], max(width, other), crossing))
            if not crossing:
                end = along
                break
        if end is not None:
            pts = cut(pts, end)
        if polyline_length(pts) < min_len:
            return None
        if not self._clear(pts, hw, gap, zones):
            return None
        return pts, joints

    # -- stages --------------------------------------------------------------------

    def rivers_stage(self) -> None:
        """Meandering rivers from one edge across the scene, kept apart."""
        rng = self.rng
        area = self.h * self.w
        n = rng.poisson(area / 1.8e6 * rng.uniform(0.3, 1.6))
        for _ in range(n):
            for _attempt in range(6):
                side = rng.integers(4)
                t = rng.uniform(0.1, 0.9)
                x0, y0, x1, y1 = self.bounds
                start, theta = {
                    0: (np.array([x0, y0 + t * (y1 - y0)]), 0.0),
                    1: (np.array([x1, y0 + t * (y1 - y0)]), math.pi),
                    2: (np.array([x0 + t * (x1 - x0), y0]), math.pi / 2),
                    3: (np.array([x0 + t * (x1 - x0), y1]), -math.pi / 2),
                }[int(side)]
                theta += rng.uniform(-0.6, 0.6)
                pts = grow(
                    rng,
                    start + 1e-3 * np.array([math.cos(theta), math.sin(theta)]),
                    theta,
                    3 * (self.h + self.w),
                    self.bounds,
                    step=5.0,
                    amp=rng.uniform(0.5, 1.3),
                    lam=(120.0, 600.0),
                )
                width = rng.uniform(6.0, 22.0)
                if len(pts) < 3 or not self._clear(pts, width / 2, 30.0, []):
                    continue
                rgb = WATER[rng.integers(len(WATER))] * rng.uniform(0.85, 1.15)
                self.add_river(Line(pts, width, kind=-1, rgb=tuple(rgb.tolist())))
                break

    def _road_look(self, kind: int, width: float) -> dict:
        """Surface, colour, markings and verge of a new road of ``kind``."""
        if self.look_hook is not None:
            return self.look_hook(kind, width)
        rng = self.rng
        season = self.style.season
        # Probabilities of gravel, asphalt, dark asphalt and concrete by kind.
        p = {MINOR: (0.55, 0.36, 0.09, 0.0), STREET: (0.0, 0.64, 0.21, 0.15)}.get(
            kind, (0.0, 0.54, 0.4, 0.06)
        )
        surface = (GRAVEL, ASPHALT, DARK, CONCRETE)[int(rng.choice(4, p=p))]
        rgb: tuple[float, ...]
        if surface == ASPHALT:
            g = rng.uniform(92, 138)
            rgb = (g * rng.uniform(0.96, 1.03), g, g * rng.uniform(0.98, 1.07))
        elif surface == DARK:
            g = rng.uniform(52, 84)
            rgb = (g, g * rng.uniform(0.98, 1.04), g * rng.uniform(1.0, 1.1))
        elif surface == CONCRETE:
            g = rng.uniform(160, 196)
            rgb = (g, g * rng.uniform(0.97, 1.0), g * rng.uniform(0.92, 1.0))
        else:
            base = np.array([172, 158, 134]) if season != "arid" else np.array([200, 186, 158])
            rgb = tuple((base * rng.uniform(0.82, 1.1) + rng.uniform(-8, 8, 3)).tolist())
        if season == "winter" and surface != GRAVEL:
            rgb = tuple(v * 0.85 for v in rgb)
        marks = surface in (ASPHALT, DARK) and width >= 9.5 and rng.random() < 0.85
        verge = kind in (MAIN, SECONDARY, MINOR) and rng.random() < 0.5
        return {
            "surface": surface,
            "rgb": tuple(float(v) for v in rgb),
            "marks": marks,
            "verge": verge,
        }

    def towns_stage(self) -> None:
        """Town centres, sizes, grid angles and plot sizes (more in urban styles)."""
        rng = self.rng
        area = self.h * self.w
        n = rng.poisson(area / 1.1e6 * (0.2 + 1.6 * self.style.urban))
        for _ in range(n):
            self.towns.append(
                Town(
                    cx=rng.uniform(0, self.w),
                    cy=rng.uniform(0, self.h),
                    radius=rng.uniform(130, 420),
                    angle=rng.uniform(0, math.pi),
                    plot=(rng.uniform(14, 30), rng.uniform(18, 40)),
                )
            )
        self.town_arr = np.array([(t.cx, t.cy, t.radius) for t in self.towns]).reshape(-1, 3)

    def main_stage(self) -> None:
        """Main roads across the whole scene, many through towns."""
        rng = self.rng
        area = self.h * self.w
        n = max(1, int(rng.poisson(area / 1.3e6 * 1.1)))
        placed = 0
        for _attempt in range(8 * n):
            if placed >= n:
                break
            if self.towns and rng.random() < 0.6:
                town = self.towns[rng.integers(len(self.towns))]
                p = np.array([town.cx, town.cy]) + rng.normal(0, 25, 2)
            else:
                p = np.array([rng.uniform(0.1, 0.9) * self.w, rng.uniform(0.1, 0.9) * self.h])
            theta = rng.uniform(0, 2 * math.pi)
            straight = rng.random() < 0.35
            amp = 0.0 if straight else rng.uniform(0.15, 0.6)
            length = 3 * (self.h + self.w)
            fwd = grow(rng, p, theta, length, self.bounds, amp=amp, lam=(500.0, 2500.0))
            bwd = grow(rng, p, theta + math.pi, length, self.bounds, amp=amp, lam=(500.0, 2500.0))
            pts = np.vstack([bwd[::-1], fwd[1:]])
            width = rng.uniform(14, 20) if rng.random() < 0.3 else rng.uniform(9, 14)
            res = self.place(pts, width, start_zone=None, p_cross=1.0, gap=14.0, min_len=60)
            if res is None:
                continue
            pts, joints = res
            self.junctions += joints
            self.add_road(Line(pts, width, kind=MAIN, **self._road_look(MAIN, width)))
            placed += 1
            for town in self.towns:
                # Align towns that a main road passes through with it.
                c = np.array([town.cx, town.cy])
                d = point_seg_dist(c[None], pts[:-1], pts[1:])[0]
                i = int(np.argmin(d))
                if d[i] < town.radius * 0.6:
                    seg = pts[i + 1] - pts[i]
                    town.angle = math.atan2(seg[1], seg[0])

    def grid_stage(self) -> None:
        """Straight street grids in towns, with some blocks merged (T junctions)."""
        rng = self.rng
        for town in self.towns:
            runs: list[tuple[np.ndarray, float]] = []
            width_town = rng.uniform(6.0, 11.0)
            bu = rng.uniform(55, 115)
            bv = rng.uniform(45, 100)
            ca, sa = math.cos(town.angle), math.sin(town.angle)
            c = np.array([town.cx, town.cy])
            axes = (np.array([ca, sa]), np.array([-sa, ca]))
            r = town.radius
            offs_u = (np.arange(-r // bu - 1, r // bu + 2) + rng.uniform(0, 1)) * bu
            offs_v = (np.arange(-r // bv - 1, r // bv + 2) + rng.uniform(0, 1)) * bv
            offs_u = offs_u[np.abs(offs_u) < r * 0.95] + rng.uniform(-0.12, 0.12, 1) * bu
            offs_v = offs_v[np.abs(offs_v) < r * 0.95]
            offs_u = offs_u + rng.uniform(-0.1, 0.1, len(offs_u)) * bu
            offs_v = offs_v + rng.uniform(-0.1, 0.1, len(offs_v)) * bv
            half_u = np.sqrt(np.maximum(r * r - offs_u**2, 0)) * rng.uniform(0.7, 1.0, len(offs_u))
            half_v = np.sqrt(np.maximum(r * r - offs_v**2, 0)) * rng.uniform(0.7, 1.0, len(offs_v))
            # Lines of constant u run along the v axis and vice versa.
            families = [
                (offs_u, half_u, offs_v, half_v, axes[0], axes[1]),
                (offs_v, half_v, offs_u, half_u, axes[1], axes[0]),
            ]
            for offs, half, cross, cross_half, normal, along in families:
                for o, hl in zip(offs, half, strict=True):
                    # Crossing positions along this line that fall inside both chords.
                    xs = [
                        x
                        for x, ch in zip(cross, cross_half, strict=True)
                        if abs(x) <= hl and abs(o) <= ch
                    ]
                    stops = np.array(sorted({-hl, *xs, hl}))
                    keep = rng.random(len(stops) - 1) > 0.17
                    run: list[float] = []
                    for i, k in enumerate(keep):
                        if k:
                            run = run or [stops[i]]
                            run.append(stops[i + 1])
                        if (not k or i == len(keep) - 1) and len(run) >= 2:
                            pts = np.array(
                                [c + normal * o + along * run[0], c + normal * o + along * run[-1]]
                            )
                            if polyline_length(pts) >= 25:
                                w = float(np.clip(width_town + rng.normal(0, 0.8), 4.0, 12.0))
                                runs.append((pts, w))
                            run = []
                        elif not k:
                            run = []
            # Streets join the network one by one, so none floats unconnected: the
            # longest starts it, then any that meets an accepted road.
            runs.sort(key=lambda r: -polyline_length(r[0]))
            pending = list(range(len(runs)))
            first = True
            while pending:
                left = []
                for i in pending:
                    verdict = self._grid_street(*runs[i], need_touch=not first)
                    first = first and verdict is False
                    if verdict is None:
                        left.append(i)
                if len(left) == len(pending):
                    break
                pending = left

    def _grid_street(
        self, pts: np.ndarray, width: float, need_touch: bool, gap: float = 8.0
    ) -> bool | None:
        """Add one straight street; False if it cannot be placed, None if it does
        not meet the network (yet) although ``need_touch``."""
        hw = width / 2
        d = (pts[-1] - pts[0]) / polyline_length(pts)
        # Probe 1.5 px beyond both ends, so ending on a crossing street counts.
        probe = densify(np.array([pts[0] - 1.5 * d, pts[-1] + 1.5 * d]), 24.0)
        pts = densify(pts, 24.0)
        zone = 2 * hw + 10
        zones = [(pts[0, 0], pts[0, 1], zone), (pts[-1, 0], pts[-1, 1], zone)]
        joints: list[tuple[float, float, float, bool]] = []
        touches = False
        for along_d, k, ang in self.index.hits(probe):
            q = cut(probe, along_d)[-1]
            lid = self._line_id(k)
            other = self._width_of(lid)
            if ang < math.radians(30):
                return False
            zones.append((q[0], q[1], (hw + other / 2 + gap) / max(math.sin(ang), 0.5) + 2))
            if lid >= 0:
                touches = True
                joints.append((q[0], q[1], max(width, other), True))
        if need_touch and not touches:
            return None
        if not self._clear(pts, hw, gap, zones):
            return False
        self.junctions += joints
        self.add_road(Line(pts, width, kind=STREET, **self._road_look(STREET, width)))
        return True

    def branch_stage(self) -> None:
        """Secondary and minor roads branch off the network into empty land until
        the target road share is reached."""
        rng = self.rng
        target = self.style.road_frac * self.h * self.w
        attempts = 0
        max_attempts = 100 + int(self.h * self.w / 2500)
        while self.road_area < target and attempts < max_attempts:
            attempts += 1
            p = np.array([rng.uniform(0, self.w), rng.uniform(0, self.h)])
            # Denser near towns: most attempts in open country are skipped, so the
            # countryside keeps large blocks unless there is no town to fill.
            if rng.random() > 0.25 + 0.75 * self._town_weight_at(p):
                continue
            minor = rng.random() < 0.4
            kind = MINOR if minor else SECONDARY
            width = rng.uniform(3.0, 6.0) if minor else rng.uniform(6.0, 12.0)
            amp = rng.uniform(0.0, 0.7) if rng.random() < 0.7 else 0.0
            length = rng.uniform(200, 1400)
            near = self.index.near(p[None], 350)
            roads_near = near[self.index.line[near] >= 0] if near.size else near
            if roads_near.size:
                a = self.index.a[roads_near]
                b = self.index.b[roads_near]
                d = point_seg_dist(p[None], a, b)[0]
                j = int(np.argmin(d))
                e = b[j] - a[j]
                t = np.clip(((p - a[j]) @ e) / max(e @ e, 1e-12), 0, 1)
                q = a[j] + t * e
                if d[j] < 15:
                    continue
                theta = math.atan2(p[1] - q[1], p[0] - q[0]) + rng.normal(0, 0.2)
                pts = grow(rng, q, theta, length, self.bounds, amp=amp, lam=(150.0, 900.0))
                parent_hw = float(self.index.hw[roads_near[j]])
                zone = (q[0], q[1], width / 2 + parent_hw + 14)
                res = self.place(pts, width, start_zone=zone, p_cross=0.3)
                if res is None:
                    continue
                pts, joints = res
                joints = [(q[0], q[1], max(width, 2 * parent_hw), False), *joints]
            else:
                # Nothing nearby: a free road through p, both ways.
                theta = rng.uniform(0, 2 * math.pi)
                fwd = grow(rng, p, theta, length / 2, self.bounds, amp=amp, lam=(150.0, 900.0))
                res_f = self.place(fwd, width, start_zone=None, p_cross=0.3, min_len=1)
                bwd = grow(
                    rng, p, theta + math.pi, length / 2, self.bounds, amp=amp, lam=(150.0, 900.0)
                )
                res_b = self.place(bwd, width, start_zone=None, p_cross=0.3, min_len=1)
                if res_f is None or res_b is None:
                    continue
                pts = np.vstack([res_b[0][::-1], res_f[0][1:]])
                if polyline_length(pts) < 40:
                    continue
                joints = res_f[1] + res_b[1]
            self.junctions += joints
            self.add_road(Line(pts, width, kind=kind, **self._road_look(kind, width)))

    def roundabout_stage(self) -> list[tuple[float, float, float]]:
        """Turn some junctions of wide roads into roundabouts; return islands (x, y, r)."""
        rng = self.rng
        cand = [j for j in self.junctions if j[2] >= 7.0]
        if not cand:
            return []
        pts = np.array([(j[0], j[1]) for j in self.junctions])
        order = rng.permutation(len(cand))
        p_pick = rng.uniform(0.1, 0.45)
        most = max(1, round(self.h * self.w / 7e5))
        made: list[tuple[float, float, float, float]] = []
        islands: list[tuple[float, float, float]] = []
        for i in order:
            x, y, wmax, _is_x = cand[i]
            if len(made) >= most:
                break
            if rng.random() > p_pick:
                continue
            ring_w = float(np.clip(wmax * rng.uniform(0.7, 1.0), 6.0, 13.0))
            radius = ring_w / 2 + rng.uniform(7.0, 24.0)
            reach = radius + ring_w / 2 + 20
            dj = np.hypot(pts[:, 0] - x, pts[:, 1] - y)
            if ((dj > 1.0) & (dj < reach + 10)).any():
                continue
            if any(math.hypot(x - mx, y - my) < mr + reach + 30 for mx, my, mr, _ in made):
                continue
            if not (-radius < x < self.w + radius and -radius < y < self.h + radius):
                continue
            # Every road near the ring must be one of those meeting at the junction.
            c = np.array([[x, y]])
            near = self.index.near(c, reach)
            if near.size:
                ids = self.index.line[near]
                d = point_seg_dist(c, self.index.a[near], self.index.b[near])[0]
                close = d - self.index.hw[near] < reach
                through = {int(i) for i in ids[d < 1.0]}
                if any(int(i) not in through for i in ids[close]):
                    continue
            made.append((x, y, radius, ring_w))
        if not made:
            return []
        new_roads: list[Line] = []
        circles = [shapely.Point(x, y).buffer(r, quad_segs=32) for x, y, r, _ in made]
        for road in self.roads:
            geom = LineString(road.pts)
            for circ in circles:
                if geom.is_empty:
                    break
                if geom.intersects(circ):
                    geom = geom.difference(circ)
            # No other junction lies near a roundabout, so short pieces left beyond
            # the ring are stubs of roads that ended there: drop them.
            for part in line_parts(geom):
                if part.length >= 24:
                    new_roads.append(copy_line(road, np.asarray(part.coords)))
        for (x, y, r, ring_w), circ in zip(made, circles, strict=True):
            ring = np.asarray(circ.exterior.coords)[::-1]
            look = self._road_look(MAIN, ring_w)
            look["marks"] = False
            new_roads.append(Line(ring, ring_w, kind=RING, **look))
            islands.append((x, y, r - ring_w / 2))
        self.roads = new_roads
        return islands


def place_tracks(rng: np.random.Generator, net: NetworkBuilder, style: Style) -> list[Line]:
    """Dirt tracks: thin brownish lines across the land, ending at roads; not roads."""
    area = net.h * net.w
    n = rng.poisson(area / 1.2e5 * rng.uniform(0.3, 1.5))
    out: list[Line] = []
    base = np.array([160, 138, 104]) if style.season != "winter" else np.array([150, 140, 128])
    for _ in range(n):
        p = np.array([rng.uniform(0, net.w), rng.uniform(0, net.h)])
        if rng.random() < 0.6:
            theta = style.field_angle + rng.integers(4) * math.pi / 2 + rng.normal(0, 0.05)
            amp = rng.uniform(0.0, 0.08)
        else:
            theta = rng.uniform(0, 2 * math.pi)
            amp = rng.uniform(0.1, 0.6)
        pts = grow(
            rng, p, theta, rng.uniform(80, 520), net.bounds, step=6.0, amp=amp, lam=(80.0, 400.0)
        )
        width = rng.uniform(1.6, 3.4)
        res = net.place(pts, width, start_zone=None, p_cross=0.0, gap=5.0, min_len=40)
        if res is None:
            continue
        rgb = base * rng.uniform(0.85, 1.15) + rng.uniform(-6, 6, 3)
        out.append(Line(res[0], width, kind=-2, rgb=tuple(rgb.tolist())))
    return out
