"""Gap bridging: :class:`Bridger` joins dead ends that point at each other (end to
end) or at the side of another line (a hidden T junction), straight or along the
path of highest road probability."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from roadseg.vectorize.graph import PixelGraph
from roadseg.vectorize.options import VectorizeOptions
from roadseg.vectorize.sources import RoadSource


@dataclass
class _EndAxis:
    """Where and in which direction a dead end points, ignoring its last metres.

    Thinning rounds a road's end into a fork; spur pruning leaves one prong, so the
    last half-width or so of every dead end hooks sideways. The axis point sits
    ``trim`` metres back from the tip, and the direction is measured from
    ``reach`` metres back to the axis point.
    """

    node: int
    k: int  # vertex index of the axis point, counted from the tip
    point: np.ndarray  # (row, col)
    direction: np.ndarray  # unit (east, north), pointing out of the end
    half: float  # road half-width near the end, metres


def _end_axis(g: PixelGraph, n: int, reach_m: float) -> _EndAxis:
    (e,) = g.inc[n]
    rc, hw, _ = g.oriented(e, n)
    cum = np.concatenate([[0.0], np.cumsum(g.scale.segment_lengths(rc))])
    # The road thins where a gap cuts it: take the half-width of the whole edge.
    finite = hw[np.isfinite(hw)]
    half = float(np.median(finite)) if finite.size else 0.0
    trim = min(max(2.0 * half, 2.0), cum[-1] / 3.0)
    k = min(int(np.searchsorted(cum, trim)), len(rc) - 1)
    far = int(np.searchsorted(cum, cum[k] + reach_m, side="right"))
    far = min(max(far, k + 2), len(rc))
    # Least-squares direction of the stretch behind the axis point.
    pts = g.scale.to_metres(rc[k:far], rc[k])
    if len(pts) >= 2:
        centred = pts - pts.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        direction = vt[0]
        if float(direction @ (pts[0] - pts[-1])) < 0:
            direction = -direction
    else:
        direction = np.zeros(2)
    return _EndAxis(n, k, rc[k].copy(), direction, half)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = math.hypot(a[0], a[1]), math.hypot(b[0], b[1])
    if na == 0 or nb == 0:
        return math.pi
    return math.acos(max(-1.0, min(1.0, float(a @ b) / (na * nb))))


class Bridger:
    """Bridges gaps at dead ends, straight or along the best probabilities.

    First end to end: pairs of dead ends at most ``gap_m`` apart whose directions
    both agree with the bridge within ``gap_angle_deg``, cheapest first (distance,
    weighted by the angles), each end used once. Then end to line: a dead end that
    points at another line within ``gap_m`` (a T junction hidden by a tree) is
    joined to it. Pairs already joined over the network within three bridge
    lengths are left alone (that would only close a tiny loop). A bridged end
    loses its hook: the bridge starts at its axis point.
    """

    def __init__(self, g: PixelGraph, source: RoadSource | None, options: VectorizeOptions) -> None:
        self.g = g
        self.source = source
        self.gap = options.gap_m
        self.max_angle = math.radians(options.gap_angle_deg)
        self.reach = max(4.0, options.gap_m / 2.0)

    def _network_distance(self, a: int, targets: list[int], limit: float) -> dict[int, float]:
        """Network distances (metres) from node ``a`` to ``targets``, up to ``limit``."""
        dist = {a: 0.0}
        heap = [(0.0, a)]
        found: dict[int, float] = {}
        want = set(targets)
        while heap:
            d, x = heapq.heappop(heap)
            if d > dist.get(x, math.inf):
                continue
            if x in want:
                found[x] = d
            for e in self.g.inc[x]:
                y = self.g.other(e, x)
                nd = d + self.g.edges[e].length
                if nd < dist.get(y, math.inf) and nd <= limit:
                    dist[y] = nd
                    heapq.heappush(heap, (nd, y))
        return found

    def run(self) -> int:
        if self.gap <= 0:
            return 0
        g = self.g
        ends = sorted(n for n in g.inc if g.degree(n) == 1)
        if not ends:
            return 0
        axes = {n: _end_axis(g, n, self.reach) for n in ends}
        made = self._end_to_end(ends, axes)
        ends = [n for n in ends if n in g.inc and g.degree(n) == 1]
        made += self._end_to_edge(ends, axes)
        return made

    def _end_to_end(self, ends: list[int], axes: dict[int, _EndAxis]) -> int:
        g = self.g
        pts = np.array([g.pos[n] for n in ends])
        tree = cKDTree(pts @ g.scale.center.T)
        slack = g.scale.max_pixel_m / max(g.scale.min_pixel_m, 1e-12)
        cands = []
        widest = max((ax.half for ax in axes.values()), default=0.0)
        for i, j in sorted(tree.query_pairs((self.gap + 2 * widest) * slack)):
            a, b = ends[i], ends[j]
            ea, eb = axes[a], axes[b]
            tip = g.scale.to_metres(g.pos[b][None], g.pos[a])[0]
            # Thinning rounds each end back by about a half-width: the gap in the
            # mask is the distance between the tips less the two half-widths.
            if math.hypot(tip[0], tip[1]) - ea.half - eb.half > self.gap:
                continue
            vec = g.scale.to_metres(eb.point[None], ea.point)[0]
            dist = math.hypot(vec[0], vec[1])
            if dist == 0:
                continue
            ang_a = _angle(ea.direction, vec)
            ang_b = _angle(eb.direction, -vec)
            # A lateral tolerance of a half-width: short gaps are otherwise too
            # sensitive to a metre of noise across the road.
            allowed = self.max_angle + math.atan2(max(ea.half, eb.half, 1.0), dist)
            if ang_a > allowed or ang_b > allowed:
                continue
            # The two roads must continue each other, not meet at a corner.
            if _angle(ea.direction, -eb.direction) > 1.5 * self.max_angle:
                continue
            cost = dist * (1.0 + (ang_a + ang_b) / allowed)
            cands.append((cost, a, b, dist))
        cands.sort()
        used: set[int] = set()
        made = 0
        for _, a, b, dist in cands:
            if a in used or b in used:
                continue
            if b in self._network_distance(a, [b], 3.0 * dist + 1.0):
                continue
            used.update((a, b))
            self._bridge(self._trim(axes[a]), self._trim(axes[b]))
            made += 1
        return made

    def _end_to_edge(self, ends: list[int], axes: dict[int, _EndAxis]) -> int:
        """Bridge ends that point at the side of another line (a hidden T junction).

        Targets are found on the graph as it stands, then each target edge is split
        once at all the vertices that ends chose on it.
        """
        g = self.g
        if not ends or not g.edges:
            return 0
        eids = sorted(g.edges)
        verts = np.concatenate([g.edges[e].rc for e in eids])
        owner = np.concatenate([np.full(len(g.edges[e].rc), e) for e in eids])
        index = np.concatenate([np.arange(len(g.edges[e].rc)) for e in eids])
        vhalf = np.concatenate([g.edges[e].hw for e in eids])
        widest = float(np.nanmax(vhalf)) if np.isfinite(vhalf).any() else 0.0
        tree = cKDTree(verts @ g.scale.center.T)
        slack = g.scale.max_pixel_m / max(g.scale.min_pixel_m, 1e-12)
        targets: list[tuple[int, int, int]] = []  # (end, edge, vertex)
        for a in ends:
            (own,) = g.inc[a]
            ax = axes[a]
            reach = self.gap + ax.half + widest
            near = np.asarray(
                tree.query_ball_point(g.pos[a] @ g.scale.center.T, reach * slack), dtype=int
            )
            near = near[owner[near] != own] if near.size else near
            if near.size == 0:
                continue
            tip = g.scale.to_metres(verts[near], g.pos[a])
            vec = g.scale.to_metres(verts[near], ax.point)
            dist = np.hypot(vec[:, 0], vec[:, 1])
            with np.errstate(invalid="ignore", divide="ignore"):
                ang = np.arccos(np.clip((vec @ ax.direction) / dist, -1.0, 1.0))
                allowed = self.max_angle + np.arctan2(max(ax.half, 1.0), dist)
            side = np.nan_to_num(vhalf[near], nan=0.0)
            gap = np.hypot(tip[:, 0], tip[:, 1]) - ax.half - side
            ok = (gap <= self.gap) & (dist > 0) & (ang <= allowed)
            if not ok.any():
                continue
            pick = np.flatnonzero(ok)
            pick = pick[np.lexsort((near[pick], dist[pick]))]
            k = int(pick[0])
            e, vk, d = int(owner[near[k]]), int(index[near[k]]), float(dist[k])
            edge = g.edges[e]
            offs = g.scale.segment_lengths(edge.rc)
            along_u, along_v = float(offs[:vk].sum()), float(offs[vk:].sum())
            known = self._network_distance(a, [edge.u, edge.v], 3.0 * d + 1.0)
            via = min(known.get(edge.u, math.inf) + along_u, known.get(edge.v, math.inf) + along_v)
            if via <= 3.0 * d + 1.0:
                continue  # already joined nearby: this would only close a tiny loop
            targets.append((a, e, vk))
        if not targets:
            return 0
        node_at: dict[tuple[int, int], int] = {}
        by_edge: dict[int, list[int]] = {}
        for _, e, vk in targets:
            by_edge.setdefault(e, []).append(vk)
        # Trim the ends first: a target may lie on another end's own edge.
        starts = {a: self._trim(axes[a]) for a, _, _ in targets}
        for e, ks in sorted(by_edge.items()):
            if e not in g.edges:
                continue
            node_at.update({(e, k): n for k, n in self._split(e, sorted(set(ks))).items()})
        made = 0
        for a, e, vk in targets:
            b = node_at.get((e, vk))
            if b is not None and b != starts[a] and starts[a] in g.inc:
                self._bridge(starts[a], b)
                made += 1
        return made

    def _trim(self, axis: _EndAxis) -> int:
        """Cut a dead end back to its axis point; returns the new end node."""
        g = self.g
        n = axis.node
        if axis.k == 0 or n not in g.inc or g.degree(n) != 1:
            return n
        (e,) = g.inc[n]
        rc, hw, pr = g.oriented(e, n)
        other = g.other(e, n)
        k = min(axis.k, len(rc) - 2)
        if k <= 0:
            return n
        bridged = g.edges[e].bridged
        g.remove_edge(e)
        g.remove_node(n)
        hw_k = float(hw[k]) if math.isfinite(hw[k]) else 0.0
        w = g.add_node(rc[k], hw_k, float(pr[k]) if pr is not None else math.nan)
        hw_new = hw[k:].copy()
        hw_new[0] = np.nan
        g.add_edge(w, other, rc[k:].copy(), hw_new, None if pr is None else pr[k:].copy(), bridged)
        return w

    def _split(self, e: int, ks: list[int]) -> dict[int, int]:
        """Split edge ``e`` at vertices ``ks``; returns the node for each vertex.

        Vertices within two pixels of an end of the edge use that end's node.
        """
        g = self.g
        edge = g.edges[e]
        cum = np.concatenate([[0.0], np.cumsum(g.scale.segment_lengths(edge.rc))])
        snap = 2.0 * g.scale.max_pixel_m
        result: dict[int, int] = {}
        cuts = []
        for k in ks:
            if cum[k] <= snap:
                result[k] = edge.u
            elif cum[-1] - cum[k] <= snap:
                result[k] = edge.v
            else:
                cuts.append(k)
        if not cuts:
            return result
        g.remove_edge(e)
        prev_node, prev_k = edge.u, 0
        for k in [*cuts, len(edge.rc) - 1]:
            if k == len(edge.rc) - 1:
                node = edge.v
            else:
                hw_k = edge.hw[k]
                pr_k = float(edge.prob[k]) if edge.prob is not None else math.nan
                node = g.add_node(edge.rc[k], float(hw_k) if math.isfinite(hw_k) else 0.0, pr_k)
                result[k] = node
            hw = edge.hw[prev_k : k + 1].copy()
            hw[0] = hw[-1] = np.nan
            pr = None if edge.prob is None else edge.prob[prev_k : k + 1]
            g.add_edge(prev_node, node, edge.rc[prev_k : k + 1], hw, pr, edge.bridged)
            prev_node, prev_k = node, k
        return result

    def _bridge(self, a: int, b: int) -> None:
        g = self.g
        pa, pb = g.pos[a], g.pos[b]
        rc = np.stack([pa, pb])
        prob = None
        if g.with_prob and self.source is not None:
            rc, prob = self._best_path(pa, pb)
            prob[0], prob[-1] = g.nprob[a], g.nprob[b]
        hw = np.full(len(rc), np.nan)
        g.add_edge(a, b, rc, hw, prob, bridged=True)

    def _best_path(self, pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The path of highest road probability between two pixels, in a corridor."""
        from skimage.graph import MCP_Geometric

        assert self.source is not None
        src = self.source
        ia = np.rint(pa).astype(int)
        ib = np.rint(pb).astype(int)
        span = int(np.abs(ia - ib).max())
        pad = max(4, span // 2)
        r0 = max(0, min(ia[0], ib[0]) - pad)
        r1 = min(src.height, max(ia[0], ib[0]) + pad + 1)
        c0 = max(0, min(ia[1], ib[1]) - pad)
        c1 = min(src.width, max(ia[1], ib[1]) + pad + 1)
        values = src.read(r0, r1, c0, c1)
        # Cost per metre -log(p): the path of highest probability (the product of
        # the probabilities along it), plus a little length so that it stays short
        # across confident road.
        cost = -np.log(np.clip(np.nan_to_num(values.astype(float), nan=0.0), 0.01, 1.0)) + 0.05
        jac = self.g.scale.jacobian(np.array([pa[0]]), np.array([pa[1]]))[0]
        sampling = (float(np.hypot(*jac[:, 0])), float(np.hypot(*jac[:, 1])))
        mcp = MCP_Geometric(cost, fully_connected=True, sampling=sampling)
        start = (int(ia[0] - r0), int(ia[1] - c0))
        end = (int(ib[0] - r0), int(ib[1] - c0))
        mcp.find_costs([start], [end])
        path = np.asarray(mcp.traceback(end), float)
        probs = values[path[:, 0].astype(int), path[:, 1].astype(int)].astype(float)
        path[:, 0] += r0
        path[:, 1] += c0
        path[0], path[-1] = pa, pb
        return path, probs
