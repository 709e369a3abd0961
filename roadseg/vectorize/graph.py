"""Skeleton to graph: :class:`PixelGraph` (a multigraph of nodes at pixel positions
and edges that are pixel paths, lengths in metres) and :func:`skeleton_graph`, which
turns skeleton pixels into junctions, end points and edges with vectorised
numpy/scipy; and the graph helpers the stitching shares (:class:`Neighbours`,
:func:`components`, :func:`walk_from`, and adding nodes, chains and rings)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from roadseg.geo import GroundScale

#: The eight neighbour directions (d_row, d_col), in the order of the neighbour
#: tables; direction ``k`` and ``7 - k`` are opposite.

OFFS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass(slots=True)
class PixelEdge:
    """An edge of a :class:`PixelGraph`: a path in pixel coordinates with per-vertex
    road half-widths (metres; NaN at nodes and bridges) and probabilities."""

    u: int
    v: int
    rc: np.ndarray  # (n, 2) float64 (row, col); rc[0] at node u, rc[-1] at node v
    hw: np.ndarray  # (n,) half-width, metres; NaN where unknown (nodes, bridges)
    prob: np.ndarray | None  # (n,) probabilities, or None
    length: float
    bridged: bool = False


class PixelGraph:
    """A multigraph of nodes (pixel positions) and edges (pixel paths).

    ``pos``, ``rad`` (road half-width, metres) and ``nprob`` describe the nodes;
    ``inc`` lists each node's edges (a loop twice); ``edges`` maps ids to
    :class:`PixelEdge`. Lengths are ground metres through ``scale``.
    """

    def __init__(self, scale: GroundScale, with_prob: bool) -> None:
        self.scale = scale
        self.with_prob = with_prob
        self.pos: dict[int, np.ndarray] = {}
        self.rad: dict[int, float] = {}
        self.nprob: dict[int, float] = {}
        self.inc: dict[int, list[int]] = {}
        self.edges: dict[int, PixelEdge] = {}
        self._next_node = 0
        self._next_edge = 0

    # -- building blocks -------------------------------------------------------------

    def add_node(self, pos: np.ndarray, rad: float, prob: float = math.nan) -> int:
        n = self._next_node
        self._next_node += 1
        self.pos[n] = np.asarray(pos, float)
        self.rad[n] = float(rad)
        self.nprob[n] = float(prob)
        self.inc[n] = []
        return n

    def remove_node(self, n: int) -> None:
        assert not self.inc[n]
        del self.pos[n], self.rad[n], self.nprob[n], self.inc[n]

    def add_edge(
        self,
        u: int,
        v: int,
        rc: np.ndarray,
        hw: np.ndarray,
        prob: np.ndarray | None,
        bridged: bool = False,
        length: float | None = None,
    ) -> int:
        e = self._next_edge
        self._next_edge += 1
        if length is None:
            length = self.scale.length(rc)
        self.edges[e] = PixelEdge(u, v, rc, hw, prob, length, bridged)
        self.inc[u].append(e)
        self.inc[v].append(e)
        return e

    def remove_edge(self, e: int) -> PixelEdge:
        edge = self.edges.pop(e)
        self.inc[edge.u].remove(e)
        self.inc[edge.v].remove(e)
        return edge

    def degree(self, n: int) -> int:
        return len(self.inc[n])

    def other(self, e: int, n: int) -> int:
        edge = self.edges[e]
        return edge.v if edge.u == n else edge.u

    def oriented(self, e: int, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The edge's arrays running from node ``start``."""
        edge = self.edges[e]
        if edge.u == start:
            return edge.rc, edge.hw, edge.prob
        return edge.rc[::-1], edge.hw[::-1], None if edge.prob is None else edge.prob[::-1]

    def merge_through(self, n: int) -> int | None:
        """Join the two edges at a node of degree 2 into one; returns the new edge."""
        if n not in self.inc or self.degree(n) != 2:
            return None
        e1, e2 = self.inc[n]
        if e1 == e2:  # a ring anchored at n
            return None
        a, b = self.other(e1, n), self.other(e2, n)
        rc1, hw1, p1 = self.oriented(e1, a)
        rc2, hw2, p2 = self.oriented(e2, n)
        bridged = self.edges[e1].bridged or self.edges[e2].bridged
        length = self.edges[e1].length + self.edges[e2].length
        rc = np.concatenate([rc1, rc2[1:]])
        hw = np.concatenate([hw1[:-1], [self.rad[n]], hw2[1:]])
        prob = None
        if p1 is not None and p2 is not None:
            prob = np.concatenate([p1, p2[1:]])
        self.remove_edge(e1)
        self.remove_edge(e2)
        self.remove_node(n)
        return self.add_edge(a, b, rc, hw, prob, bridged, length)

    def merge_all_degree2(self) -> None:
        for n in sorted(self.inc):
            if n in self.inc and self.degree(n) == 2:
                self.merge_through(n)

    def drop_isolated_nodes(self) -> None:
        for n in [n for n, es in self.inc.items() if not es]:
            self.remove_node(n)


def skeleton_graph(
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
    scale: GroundScale,
    half_width: np.ndarray | None = None,
    prob: np.ndarray | None = None,
) -> PixelGraph:
    """Turn skeleton pixels into a graph of junctions, end points and edges.

    Adjacency is 8-connected, except that a diagonal step is ignored when the two
    pixels also touch through a common edge neighbour (so staircases are paths, not
    junctions). Pixels with other than two neighbours are node pixels; touching node
    pixels form one node at their centroid. Chains of two-neighbour pixels are edges;
    a chain with no node at all is an isolated ring and becomes a closed edge. No
    skeleton pixel is lost, and loops and parallel edges are kept.

    Everything is vectorised (neighbour tables by binary search, components and a
    breadth-first ordering with :mod:`scipy.sparse.csgraph`); each edge's arrays
    are slices of one array holding all chains with their end nodes.

    Args:
        rows, cols: skeleton pixel indices (any order, no duplicates).
        shape: raster (height, width).
        scale: ground scale for lengths.
        half_width: road half-width at each pixel, metres.
        prob: road probability at each pixel.
    """
    H, W = shape
    rows = np.asarray(rows).astype(np.int32)  # raster sides are far below 2**31
    cols = np.asarray(cols).astype(np.int32)
    n = rows.size
    graph = PixelGraph(scale, prob is not None)
    if n == 0:
        return graph
    half_width = np.full(n, np.nan) if half_width is None else np.asarray(half_width, float)
    keys = rows.astype(np.int64) * W + cols
    order = np.argsort(keys, kind="stable")
    keys, rows, cols, half_width = keys[order], rows[order], cols[order], half_width[order]
    if prob is not None:
        prob = np.asarray(prob, float)[order]

    nbrs = Neighbours(keys, rows, cols, H, W)
    block = 1 << 17
    spans = [(i, min(i + block, n)) for i in range(0, n, block)]
    # Pass 1: which pixels are nodes (other than two neighbours).
    is_node = np.zeros(n, bool)
    for i0, i1 in spans:
        _, keep = nbrs.table(np.arange(i0, i1))
        is_node[i0:i1] = keep.sum(axis=1) != 2
    is_path = ~is_node
    cl_all, pdeg, indices, indptr, end_ids_a, end_pair = _pixel_links(nbrs, spans, is_node, is_path)

    node_ids = np.flatnonzero(is_node)
    cluster = np.full(n, -1, np.int64)
    node_of_cluster = np.zeros(0, np.int64)
    if node_ids.size:
        _, cluster[node_ids] = np.unique(cl_all[node_ids], return_inverse=True)
        node_of_cluster = add_cluster_nodes(
            graph,
            cluster[node_ids],
            rows[node_ids],
            cols[node_ids],
            half_width[node_ids],
            None if prob is None else prob[node_ids],
        )
    del cl_all

    # Chains of path pixels, ordered by a breadth-first walk from one end.
    path_ids = np.flatnonzero(is_path)
    if path_ids.size:
        seq, first_at, last_at, ring = _order_chains(path_ids, pdeg, indices, indptr)
        del indices, indptr, pdeg

        def node_pair(pix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            at = np.searchsorted(end_ids_a, pix)
            return end_pair[0][at], end_pair[1][at]

        _add_chains(
            graph,
            seq,
            first_at,
            last_at,
            ring,
            rows,
            cols,
            half_width,
            prob,
            node_pair,
            cluster,
            node_of_cluster,
        )
    graph.drop_isolated_nodes()
    return graph


def _pixel_links(
    nbrs: Neighbours, spans: list[tuple[int, int]], is_node: np.ndarray, is_path: np.ndarray
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]
]:
    """Pass 2 of :func:`skeleton_graph`, block by block (``spans``) over the sorted
    skeleton pixels: node-node links (8-connected) for clusters; path-path links
    (pruned) for chains, as CSR pieces; and the node neighbours of chain ends.

    Returns:
        The cluster component of every pixel (meaningful at node pixels), each
        pixel's number of path links, the path links as CSR ``indices`` and
        ``indptr``, the chain-end pixels (increasing) and their first and second
        node neighbours (-1: none).
    """
    n = is_node.size
    node_ext = np.append(is_node, False)  # index -1 (no neighbour) reads False
    path_ext = np.append(is_path, False)
    cl_src, cl_dst, p_count, p_idx, end_ids, end_n1, end_n2 = [], [], [], [], [], [], []
    for i0, i1 in spans:
        idx = np.arange(i0, i1)
        full, keep = nbrs.table(idx)
        fm = np.zeros(full.shape, bool)
        pm = np.zeros(full.shape, bool)
        nm = np.zeros(full.shape, bool)
        for k in range(8):
            fm[:, k] = (full[:, k] >= 0) & node_ext[full[:, k]]
            pm[:, k] = keep[:, k] & path_ext[full[:, k]]
            nm[:, k] = keep[:, k] & node_ext[full[:, k]]
        fm &= is_node[i0:i1, None]
        pm &= is_path[i0:i1, None]
        r, kk = np.nonzero(fm)
        cl_src.append(idx[r])
        cl_dst.append(full[r, kk])
        p_count.append(pm.sum(axis=1))
        p_idx.append(full[pm])
        ends = np.flatnonzero(is_path[i0:i1] & (p_count[-1] < 2))
        first, second = _first_two(full[ends], nm[ends])
        end_ids.append(idx[ends])
        end_n1.append(first)
        end_n2.append(second)
    del full, keep, fm, pm, nm
    pairs = np.stack([np.concatenate(cl_src), np.concatenate(cl_dst)], axis=1)
    cl_all = components(n, pairs)
    del pairs, cl_src, cl_dst
    pdeg = np.concatenate(p_count)
    indices = np.concatenate(p_idx).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(pdeg)]).astype(np.int64)
    del p_idx, p_count
    end_ids_a = np.concatenate(end_ids)
    end_pair = (np.concatenate(end_n1), np.concatenate(end_n2))
    return cl_all, pdeg, indices, indptr, end_ids_a, end_pair


def _order_chains(
    path_ids: np.ndarray, pdeg: np.ndarray, indices: np.ndarray, indptr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The chains of path pixels (linked by the CSR ``indices``/``indptr`` over all
    pixels), each walked breadth-first from its lowest end pixel; an isolated ring
    from its lowest pixel, broken between it and its lowest-numbered neighbour.

    Returns:
        ``seq`` (the path pixels, chain by chain in the order of the chains'
        numbers, each in walking order), where each chain starts and ends in it,
        and which chains are rings.
    """
    n = pdeg.size
    data = np.ones(indices.size, np.int8)
    links = sparse.csr_matrix((data, indices, indptr), shape=(n, n))
    _, chain = csgraph.connected_components(links, directed=False)
    n_chain_ids = int(chain.max()) + 1
    ends = path_ids[pdeg[path_ids] < 2]
    has_end = np.zeros(n_chain_ids, bool)
    has_end[chain[ends]] = True
    start = np.full(n_chain_ids, n, np.int64)
    np.minimum.at(start, chain[ends], ends)
    ring_chains = np.unique(chain[path_ids][~has_end[chain[path_ids]]])
    if ring_chains.size:
        ring_start = np.full(n_chain_ids, n, np.int64)
        np.minimum.at(ring_start, chain[path_ids], path_ids)
        start[ring_chains] = ring_start[ring_chains]
        # Break each ring between its start and its lowest-numbered neighbour.
        for s_ in start[ring_chains]:
            t_ = int(indices[indptr[s_] : indptr[s_ + 1]].min())
            for a_, b_ in ((int(s_), t_), (t_, int(s_))):
                row = slice(indptr[a_], indptr[a_ + 1])
                data[row][indices[row] == b_] = 0
        links = sparse.csr_matrix((data, indices, indptr), shape=(n, n))
        links.eliminate_zeros()
    chains = np.unique(chain[path_ids])
    starts = start[chains]
    seq = walk_from(links, starts)  # along the path links (symmetric)
    del links, data
    seq = seq[np.argsort(chain[seq], kind="stable")]
    first_at = np.concatenate([[0], np.flatnonzero(np.diff(chain[seq])) + 1])
    last_at = np.concatenate([first_at[1:], [seq.size]]) - 1
    ring = np.isin(chain[seq[first_at]], ring_chains)
    return seq, first_at, last_at, ring


def add_cluster_nodes(
    graph: PixelGraph,
    cid: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    half_width: np.ndarray,
    prob: np.ndarray | None,
) -> np.ndarray:
    """Add one node per cluster of node pixels; returns the node of each cluster.

    The node pixels come in (row, col) order with their cluster numbers ``cid``
    (0, 1, ... in that order of first appearance): a node sits at its pixels'
    centroid, with their widest half-width and their mean probability (summed in
    pixel order, so the same pixels always give the same bits).
    """
    n_clusters = int(cid.max()) + 1
    cnt = np.bincount(cid, minlength=n_clusters)
    cr = np.bincount(cid, rows, minlength=n_clusters) / cnt
    cc_ = np.bincount(cid, cols, minlength=n_clusters) / cnt
    crad = np.full(n_clusters, -np.inf)
    np.maximum.at(crad, cid, np.nan_to_num(half_width, nan=0.0))
    cprob = np.full(n_clusters, np.nan)
    if prob is not None:
        cprob = np.bincount(cid, prob, minlength=n_clusters) / cnt
    return np.array(
        [
            graph.add_node(np.array([cr[c], cc_[c]]), float(crad[c]), float(cprob[c]))
            for c in range(n_clusters)
        ],
        np.int64,
    )


def _add_chains(
    graph: PixelGraph,
    seq: np.ndarray,
    first_at: np.ndarray,
    last_at: np.ndarray,
    ring: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    half_width: np.ndarray,
    prob: np.ndarray | None,
    node_pair: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    cluster: np.ndarray,
    node_of_cluster: np.ndarray,
) -> None:
    """Edges for ordered chains: open chains get their end nodes, rings close."""
    # Open chains: the node beside the first pixel, and beside the last one (or the
    # first pixel's second node when the chain is a single pixel).
    op = np.flatnonzero(~ring)
    if op.size:
        first, last = seq[first_at[op]], seq[last_at[op]]
        n1_first, n2_first = node_pair(first)
        n1_last, _ = node_pair(last)
        single = first == last
        u_pix = n1_first
        v_pix = np.where(single, np.where(n2_first >= 0, n2_first, n1_first), n1_last)
        u = node_of_cluster[cluster[u_pix]]
        v = node_of_cluster[cluster[v_pix]]
        chain_sizes = last_at - first_at + 1
        members = seq[np.flatnonzero(np.repeat(~ring, chain_sizes))]  # open chains, in order
        add_open_chains(
            graph,
            chain_sizes[op],
            u,
            v,
            rows[members],
            cols[members],
            half_width[members],
            None if prob is None else prob[members],
        )
    for j in np.flatnonzero(ring):
        piece = seq[first_at[j] : last_at[j] + 1]
        add_ring(
            graph,
            rows[piece],
            cols[piece],
            half_width[piece],
            None if prob is None else prob[piece],
        )


def add_open_chains(
    graph: PixelGraph,
    length: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    half_width: np.ndarray,
    prob: np.ndarray | None,
) -> None:
    """One edge per open chain, in order, from node ``u`` to node ``v``.

    ``rows``, ``cols``, ``half_width`` and ``prob`` hold the chains' pixels one
    chain after the other, each in walking order, ``length`` pixels per chain. All
    edges' arrays are slices of one array holding every chain with its end nodes
    around it, and their lengths are sums over it (so the bits of a length depend
    only on the chains given, in the order given).
    """
    offset = np.concatenate([[0], np.cumsum(length + 2)[:-1]])
    total = int((length + 2).sum())
    starts = np.concatenate([[0], np.cumsum(length)[:-1]])
    pixel_slot = np.arange(rows.size) + np.repeat(offset + 1 - starts, length)
    rc = np.empty((total, 2))
    hw = np.full(total, np.nan)
    rc[pixel_slot, 0] = rows
    rc[pixel_slot, 1] = cols
    hw[pixel_slot] = half_width
    upos = np.array([graph.pos[x] for x in u]).reshape(-1, 2)
    vpos = np.array([graph.pos[x] for x in v]).reshape(-1, 2)
    rc[offset] = upos
    rc[offset + length + 1] = vpos
    pr = None
    if prob is not None:
        pr = np.full(total, np.nan)
        pr[pixel_slot] = prob
        pr[offset] = [graph.nprob[x] for x in u]
        pr[offset + length + 1] = [graph.nprob[x] for x in v]
    seg = np.concatenate([graph.scale.segment_lengths(rc), [0.0]])
    seg[offset[1:] - 1] = 0.0  # the joins between consecutive chains
    lengths = np.add.reduceat(seg, offset)
    for j in range(length.size):
        a, b = int(offset[j]), int(offset[j] + length[j] + 2)
        graph.add_edge(
            int(u[j]),
            int(v[j]),
            rc[a:b],
            hw[a:b],
            None if pr is None else pr[a:b],
            length=float(lengths[j]),
        )


def add_ring(
    graph: PixelGraph,
    rows: np.ndarray,
    cols: np.ndarray,
    half_width: np.ndarray,
    prob: np.ndarray | None,
) -> None:
    """A closed edge for an isolated ring (pixels in walking order), anchored at a
    new node on its first pixel."""
    rc_r = np.stack([rows, cols], axis=1).astype(float)
    hw_r = half_width
    pr_r = prob
    a = graph.add_node(rc_r[0], float(np.nan_to_num(hw_r[0])), _first(pr_r))
    rc_r = np.concatenate([rc_r, rc_r[:1]])
    hw_r = np.concatenate([[np.nan], hw_r[1:], [np.nan]])
    if pr_r is not None:
        pr_r = np.concatenate([pr_r, pr_r[:1]])
    graph.add_edge(a, a, rc_r, hw_r, pr_r)


def _first_two(table: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and second entries of each row of ``table`` where ``mask``; -1: none."""
    rows = np.arange(len(table))
    k1 = np.argmax(mask, axis=1)
    first = np.where(mask[rows, k1], table[rows, k1], -1)
    rest = mask.copy()
    rest[rows, k1] = False
    k2 = np.argmax(rest, axis=1)
    second = np.where(rest[rows, k2], table[rows, k2], -1)
    return first.astype(np.int64), second.astype(np.int64)


class Neighbours:
    """8-neighbour tables of skeleton pixels sorted by (row, col), for any subset.

    Computed block by block when needed (binary search in the sorted keys), so no
    (pixels x 8) table of the whole skeleton is ever held.
    """

    def __init__(self, keys: np.ndarray, rows: np.ndarray, cols: np.ndarray, h: int, w: int):
        self.keys, self.rows, self.cols, self.h, self.w = keys, rows, cols, h, w

    def table(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(full, keep)`` for pixels ``idx``: ``full[i, k]`` is the index of the
        neighbour in direction ``OFFS[k]`` (-1: none); ``keep`` drops diagonals
        already joined through an edge neighbour (``(dr, 0)`` or ``(0, dc)``)."""
        n = self.keys.size
        full = np.full((idx.size, 8), -1, np.int32)
        r0, c0 = self.rows[idx], self.cols[idx]
        for k, (dr, dc) in enumerate(OFFS):
            rr, cc = r0 + dr, c0 + dc
            q = rr.astype(np.int64) * self.w + cc
            at = np.minimum(np.searchsorted(self.keys, q), n - 1)
            hit = (rr >= 0) & (rr < self.h) & (cc >= 0) & (cc < self.w) & (self.keys[at] == q)
            full[hit, k] = at[hit]
        present = full >= 0
        keep = present.copy()
        for k, (dr, dc) in enumerate(OFFS):
            if dr and dc:
                keep[:, k] &= ~(present[:, OFFS.index((dr, 0))] | present[:, OFFS.index((0, dc))])
        return full, keep


def _first(values: np.ndarray | None) -> float:
    return float(values[0]) if values is not None and values.size else math.nan


def walk_from(links: sparse.csr_matrix, starts: np.ndarray) -> np.ndarray:
    """The nodes of ``links`` (a directed adjacency matrix, n x n) in
    breadth-first order from ``starts``, taken in the given order: a virtual
    root linked to every start is walked from, then dropped."""
    n = links.shape[0]
    walk = sparse.csr_matrix(
        (
            np.ones(links.indices.size + starts.size, np.int8),
            np.concatenate([links.indices, starts.astype(np.int32)]),
            np.concatenate([links.indptr, [links.indptr[-1] + starts.size]]),
        ),
        shape=(n + 1, n + 1),
    )
    return csgraph.breadth_first_order(walk, n, directed=True, return_predecessors=False)[1:]


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes given undirected pairs."""
    if n == 0:
        return np.zeros(0, np.int64)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = sparse.coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    ).tocsr()
    _, labels = csgraph.connected_components(graph, directed=False)
    return labels.astype(np.int64)
