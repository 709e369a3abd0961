"""Graph cleaning in metres, apart from the bridging: small loops at junctions,
spurs (:func:`prune_spurs`), junctions split by the thinning
(:func:`merge_junctions`), short fragments, junctions moved to where their roads'
center lines meet (:func:`refine_junctions`) and dead ends moved to the raster's
edge (:func:`extend_to_border`)."""

from __future__ import annotations

import heapq
import math

import numpy as np

from roadseg.vectorize.graph import PixelGraph, components


def drop_small_loops(g: PixelGraph, limit_m: float) -> None:
    """Remove loops at junctions shorter than ``limit_m`` or than the junction's
    circumference (2 pi times its half-width); a node left with two edges joins them."""
    for e in sorted(g.edges):
        edge = g.edges.get(e)
        if edge is not None and edge.u == edge.v and g.degree(edge.u) > 2:
            if edge.length < max(limit_m, 2 * math.pi * g.rad[edge.u]):
                g.remove_edge(e)
                g.merge_through(edge.u)


def prune_spurs(g: PixelGraph, spur_m: float) -> int:
    """Remove side branches that end less than ``spur_m`` beyond the road's edge.

    A spur is an edge from an end point to a junction (degree >= 3). What counts is
    how far it reaches beyond the road body at the junction: its length minus the
    road's half-width there. Spurs go shortest first and one at a time, so of the
    two prongs that thinning leaves at a blunt road end only one goes, and the
    other becomes the road's continuation.

    Returns:
        The number of spurs removed.
    """
    removed = 0
    heap: list[tuple[float, int]] = []

    def push(e: int) -> None:
        edge = g.edges[e]
        if edge.u == edge.v:
            return
        du, dv = g.degree(edge.u), g.degree(edge.v)
        if (du == 1 and dv >= 3) or (dv == 1 and du >= 3):
            junction = edge.v if du == 1 else edge.u
            reach = edge.length - g.rad[junction]
            if reach < spur_m:
                heapq.heappush(heap, (edge.length, e))

    for e in sorted(g.edges):
        push(e)
    while heap:
        _, e = heapq.heappop(heap)
        if e not in g.edges:
            continue
        edge = g.edges[e]
        du, dv = g.degree(edge.u), g.degree(edge.v)
        if not ((du == 1 and dv >= 3) or (dv == 1 and du >= 3)):
            continue
        tip, junction = (edge.u, edge.v) if du == 1 else (edge.v, edge.u)
        if edge.length - g.rad[junction] >= spur_m:
            continue
        g.remove_edge(e)
        g.remove_node(tip)
        removed += 1
        new = g.merge_through(junction)
        if new is not None:
            push(new)
        elif junction in g.inc:
            for f in list(g.inc[junction]):
                push(f)
    return removed


def merge_junctions(g: PixelGraph, merge_m: float) -> int:
    """Contract edges between junctions that are closer than ``merge_m`` or lie
    inside each other's road body (length < sum of the two half-widths).

    Thinning splits an X crossing of wide roads into two T junctions a few pixels
    apart; this puts them back together at the middle of the short edge. Parallel
    edges between the two become loops; loops shorter than a junction's
    circumference are dropped.

    Returns:
        The number of contractions.
    """
    count = 0
    heap: list[tuple[float, int]] = []

    def short(e: int) -> bool:
        edge = g.edges[e]
        if edge.u == edge.v or g.degree(edge.u) < 3 or g.degree(edge.v) < 3:
            return False
        return edge.length < max(merge_m, g.rad[edge.u] + g.rad[edge.v])

    for e in sorted(g.edges):
        if short(e):
            heapq.heappush(heap, (g.edges[e].length, e))
    while heap:
        _, e = heapq.heappop(heap)
        if e not in g.edges or not short(e):
            continue
        edge = g.remove_edge(e)
        u, v = edge.u, edge.v
        cum = np.concatenate([[0.0], np.cumsum(g.scale.segment_lengths(edge.rc))])
        k = int(np.searchsorted(cum, cum[-1] / 2.0))
        k = min(max(k, 0), len(edge.rc) - 1)
        w = g.add_node(edge.rc[k], max(g.rad[u], g.rad[v]), _mean2(g.nprob[u], g.nprob[v]))
        for old in (u, v):
            for f in list(dict.fromkeys(g.inc[old])):
                fe = g.remove_edge(f)
                rc, hw = fe.rc.copy(), fe.hw
                pr = None if fe.prob is None else fe.prob.copy()
                nu = w if fe.u in (u, v) else fe.u
                nv = w if fe.v in (u, v) else fe.v
                if fe.u in (u, v):
                    rc[0] = g.pos[w]
                if fe.v in (u, v):
                    rc[-1] = g.pos[w]
                g.add_edge(nu, nv, rc, hw, pr, fe.bridged)
        g.remove_node(u)
        g.remove_node(v)
        count += 1
        # Loops made of former parallel edges.
        for f in list(dict.fromkeys(g.inc[w])):
            fe = g.edges[f]
            if fe.u == fe.v and fe.length < max(merge_m, 2 * math.pi * g.rad[w]):
                g.remove_edge(f)
        new = g.merge_through(w)
        if new is None and w in g.inc:
            for f in g.inc[w]:
                if short(f):
                    heapq.heappush(heap, (g.edges[f].length, f))
    return count


def _mean2(a: float, b: float) -> float:
    vals = [x for x in (a, b) if math.isfinite(x)]
    return sum(vals) / len(vals) if vals else math.nan


def refine_junctions(g: PixelGraph, min_zone_m: float = 1.0) -> int:
    """Move each junction to where its roads' center lines meet.

    Thinning puts a junction where the skeleton's branches meet, which for a T is
    pulled into the stem by about a quarter of the crossing road's width. For each
    incident edge a straight line is fitted (least squares) to its vertices just
    outside the junction zone (the road's half-width around the node); the node
    moves to the point nearest to all these lines when that point lies inside the
    zone, and the edges then run straight from it to their first vertex outside.

    Returns:
        The number of junctions moved.
    """
    moved = 0
    for n in sorted(g.inc):
        if n not in g.inc or g.degree(n) < 3:
            continue
        zone = max(g.rad[n], min_zone_m)
        span = max(2.0 * zone, 4.0)
        origin = g.pos[n]
        jac = g.scale.jacobian(np.array([origin[0]]), np.array([origin[1]]))[0]
        normal = np.zeros((2, 2))
        rhs = np.zeros(2)
        ends: list[tuple[int, bool, int]] = []  # (edge, from its start, first vertex kept)
        fits = 0
        for e in dict.fromkeys(g.inc[n]):
            edge = g.edges[e]
            for forward in (True, False) if edge.u == edge.v else (edge.u == n,):
                rc = edge.rc if forward else edge.rc[::-1]
                cum = np.concatenate([[0.0], np.cumsum(g.scale.segment_lengths(rc))])
                k = int(np.searchsorted(cum, zone))
                ends.append((e, forward, k))
                sel = (cum >= zone) & (cum <= zone + span)
                if np.count_nonzero(sel) < 3 or cum[-1] < zone + 1.0:
                    continue
                pts = (rc[sel] - origin) @ jac.T
                centre = pts.mean(axis=0)
                _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
                proj = np.eye(2) - np.outer(vt[0], vt[0])
                normal += proj
                rhs += proj @ centre
                fits += 1
        if fits < 2 or np.linalg.cond(normal) > 1e3:
            continue
        target = np.linalg.solve(normal, rhs)
        if math.hypot(target[0], target[1]) > zone:
            continue
        new_pos = origin + np.linalg.solve(jac, target)
        if any(k >= len(g.edges[e].rc) - 1 for e, _, k in ends):
            continue  # an edge would vanish into the junction
        g.pos[n] = new_pos
        for e, forward, k in ends:
            edge = g.edges[e]
            if forward:
                edge.rc = np.concatenate([new_pos[None], edge.rc[max(k, 1) :]])
                edge.hw = np.concatenate([[np.nan], edge.hw[max(k, 1) :]])
                if edge.prob is not None:
                    edge.prob = np.concatenate([edge.prob[:1], edge.prob[max(k, 1) :]])
            else:
                stop = len(edge.rc) - max(k, 1)
                edge.rc = np.concatenate([edge.rc[:stop], new_pos[None]])
                edge.hw = np.concatenate([edge.hw[:stop], [np.nan]])
                if edge.prob is not None:
                    edge.prob = np.concatenate([edge.prob[:stop], edge.prob[-1:]])
            edge.length = g.scale.length(edge.rc)
        moved += 1
    return moved


def drop_fragments(g: PixelGraph, min_m: float) -> None:
    """Remove connected pieces of the network shorter than ``min_m`` in all."""
    if min_m <= 0 or not g.edges:
        return
    nodes = sorted(g.inc)
    index = {n: i for i, n in enumerate(nodes)}
    pairs = np.array([(index[e.u], index[e.v]) for e in g.edges.values()], np.int64)
    comp = components(len(nodes), pairs)
    total = np.zeros(comp.max() + 1)
    for edge in g.edges.values():
        total[comp[index[edge.u]]] += edge.length
    for e in sorted(g.edges):
        edge = g.edges[e]
        if total[comp[index[edge.u]]] < min_m:
            g.remove_edge(e)
    g.drop_isolated_nodes()


def extend_to_border(g: PixelGraph, shape: tuple[int, int]) -> int:
    """Move dead ends on the raster's first or last row or column to its edge.

    Pixel centres stop half a pixel short of the edge; a road that leaves the
    raster should reach it, so that networks of neighbouring tiles meet.
    """
    h, w = shape
    moved = 0
    for n in sorted(g.inc):
        if g.degree(n) != 1:
            continue
        r, c = g.pos[n]
        new = np.array([r, c])
        new[0] = -0.5 if r <= 0 else (h - 0.5 if r >= h - 1 else r)
        new[1] = -0.5 if c <= 0 else (w - 0.5 if c >= w - 1 else c)
        if np.array_equal(new, g.pos[n]):
            continue
        (e,) = g.inc[n]
        edge = g.edges[e]
        g.pos[n] = new
        edge.rc = edge.rc.copy()
        edge.rc[0 if edge.u == n else -1] = new
        edge.length = g.scale.length(edge.rc)
        moved += 1
    return moved
