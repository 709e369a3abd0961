"""Skeleton to graph, chunk by chunk: the graph structure of one chunk's core
(:class:`ChunkGraph`, from :func:`chunk_graph`, a thinning task's result) and the
stitching of all chunks' structures across their borders into the graph that
:func:`~roadseg.vectorize.graph.skeleton_graph` gives for the whole skeleton
(:func:`merge_chunk_graphs`), node and edge numbers included."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from roadseg.errors import RoadsegError
from roadseg.geo import GroundScale
from roadseg.vectorize.chunks import Chunk
from roadseg.vectorize.graph import (
    Neighbours,
    PixelGraph,
    add_cluster_nodes,
    add_open_chains,
    add_ring,
    components,
    walk_from,
)


@dataclass
class ChunkGraph:
    """The graph structure of one chunk's core, as compact arrays (a task's result).

    Node pixels (other than two neighbours) with their local cluster, and the pairs
    of touching node pixels across the core's border (as global keys
    ``row * width + col``). Chain pieces: maximal runs of two-neighbour pixels
    inside the core, each in walking order, with an exit at each end: the
    neighbour the chain continues to beyond the piece (a node pixel, or a
    two-neighbour pixel across the border) as its key and direction (an index of
    :data:`roadseg.vectorize.graph.OFFS`); -1 where there is none (a ring inside
    the core). A single-pixel piece has both of its exits at that pixel, in
    ``OFFS`` order.
    """

    node_keys: np.ndarray  # (k,) int64, increasing
    node_hw: np.ndarray  # (k,) float64
    node_prob: np.ndarray | None  # (k,) float32
    node_label: np.ndarray  # (k,) int32, local cluster 0..n_labels-1
    n_labels: int
    cross: np.ndarray  # (m, 2) int64: node pixel keys (in the core, beyond it)
    piece_len: np.ndarray  # (p,) int32, pixels per piece
    rows: np.ndarray  # (sum(piece_len),) int32, the pieces' pixels in walking order
    cols: np.ndarray
    hw: np.ndarray  # float64
    prob: np.ndarray | None  # float32
    exit_key: np.ndarray  # (p, 2) int64, -1: none
    exit_dir: np.ndarray  # (p, 2) int8
    exit_node: np.ndarray  # (p, 2) bool: the exit is a node pixel

    @property
    def pixels(self) -> int:
        return int(self.node_keys.size + self.rows.size)


def chunk_graph(
    ext: np.ndarray,
    er0: int,
    ec0: int,
    chunk: Chunk,
    width: int,
    half_width: np.ndarray,
    prob: np.ndarray | None,
) -> ChunkGraph:
    """The graph structure of a chunk's core (see :class:`ChunkGraph`).

    ``ext`` is the skeleton of the core and of up to two pixels around it (within
    the raster), starting at ``(er0, ec0)``: what the neighbour counts of the core's
    pixels and of the pixels next to it depend on. ``half_width`` and ``prob``
    belong to the core's skeleton pixels in (row, col) order.
    """
    h, w = ext.shape
    yy, xx = np.nonzero(ext)
    n = yy.size
    full, keep = Neighbours(yy.astype(np.int64) * w + xx, yy, xx, h, w).table(np.arange(n))
    # Exact on the core and the pixel ring around it (their neighbours are in ext).
    is_node = keep.sum(axis=1) != 2
    in_core = (
        (yy >= chunk.r0 - er0)
        & (yy < chunk.r1 - er0)
        & (xx >= chunk.c0 - ec0)
        & (xx < chunk.c1 - ec0)
    )
    gkey = (yy + er0).astype(np.int64) * width + (xx + ec0)
    rank = np.cumsum(in_core) - 1  # index among the core's pixels, for its arrays
    node_x = np.append(is_node, False)
    core_x = np.append(in_core, False)

    # Nodes: local clusters (8-connected) and the touching pairs across the border.
    nid = np.flatnonzero(in_core & is_node)
    nb = full[nid]
    touch = (nb >= 0) & node_x[nb]
    inside = touch & core_x[nb]
    r, k = np.nonzero(inside)
    labels = components(n, np.stack([nid[r], nb[r, k]], axis=1))
    _, node_label = np.unique(labels[nid], return_inverse=True)
    r, k = np.nonzero(touch & ~core_x[nb])
    cross = np.stack([gkey[nid[r]], gkey[nb[r, k]]], axis=1)

    # Chain pieces: two-neighbour pixels of the core linked inside the core.
    pids = np.flatnonzero(in_core & ~is_node)
    n_path = pids.size
    pid = np.full(n + 1, -1, np.int64)
    pid[pids] = np.arange(n_path)
    nb = full[pids]
    kp = keep[pids]
    link = kp & core_x[nb] & ~node_x[nb]
    r, k = np.nonzero(link)
    seq, first_at, last_at = _walk_pieces(n_path, r, pid[nb[r, k]])
    exits = kp & ~link  # to a node pixel, or beyond the core
    head, tail = seq[first_at], seq[last_at]
    piece_len = (last_at - first_at + 1).astype(np.int32)
    # First and second exit of each pixel, in OFFS order (-1: none).
    k1 = np.where(exits.any(axis=1), np.argmax(exits, axis=1), -1)
    rest = exits.copy()
    rest[np.arange(n_path), np.maximum(k1, 0)] = False
    k2 = np.where(rest.any(axis=1), np.argmax(rest, axis=1), -1)
    single = piece_len == 1
    exit_dir = np.stack([k1[head], np.where(single, k2[head], k1[tail])], axis=1).astype(np.int8)
    end_pix = np.stack([head, tail], axis=1)
    target = nb[end_pix, np.maximum(exit_dir, 0)]
    target = np.where(exit_dir >= 0, target, n)
    exit_key = np.where(exit_dir >= 0, gkey[np.minimum(target, max(n - 1, 0))], -1)
    walk = pids[seq]
    core_of_seq = rank[walk]
    at = rank[nid]
    return ChunkGraph(
        node_keys=gkey[nid],
        node_hw=half_width[at],
        node_prob=None if prob is None else prob[at],
        node_label=node_label.astype(np.int32).reshape(-1),
        n_labels=int(node_label.max()) + 1 if nid.size else 0,
        cross=cross.astype(np.int64).reshape(-1, 2),
        piece_len=piece_len,
        rows=(yy[walk] + er0).astype(np.int32),
        cols=(xx[walk] + ec0).astype(np.int32),
        hw=half_width[core_of_seq],
        prob=None if prob is None else prob[core_of_seq],
        exit_key=exit_key.reshape(-1, 2),
        exit_dir=exit_dir.reshape(-1, 2),
        exit_node=node_x[target].reshape(-1, 2),
    )


def _walk_pieces(
    n: int, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order the vertices of a graph of paths and cycles (degree <= 2, ``n``
    vertices, symmetric links ``src``-``dst``) along each component.

    Returns ``seq`` (every vertex once, component by component in the order of
    their lowest vertex) and the positions in ``seq`` where each component starts
    and ends. A path runs from its lower-numbered end; a cycle starts at its lowest
    vertex and leaves it away from that vertex's lower-numbered neighbour.
    """
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    links = sparse.csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n, n))
    _, comp = csgraph.connected_components(links, directed=False)
    n_comp = int(comp.max()) + 1
    pdeg = np.diff(links.indptr)
    ends = np.flatnonzero(pdeg < 2)
    start = np.full(n_comp, n, np.int64)
    np.minimum.at(start, comp[ends], ends)
    cyc = np.flatnonzero(start == n)
    if cyc.size:
        lowest = np.full(n_comp, n, np.int64)
        np.minimum.at(lowest, comp, np.arange(n))
        start[cyc] = lowest[cyc]
        cut = []
        for s_ in start[cyc]:
            t_ = int(links.indices[links.indptr[s_] : links.indptr[s_ + 1]].min())
            cut += [(int(s_), t_), (t_, int(s_))]
        cut_a = np.array(cut, np.int64)
        drop = sparse.csr_matrix(
            (np.ones(len(cut_a), np.int8), (cut_a[:, 0], cut_a[:, 1])), shape=(n, n)
        )
        links = (links - drop).tocsr()
        links.eliminate_zeros()
    seq = walk_from(links, start)
    seq = seq[np.argsort(comp[seq], kind="stable")].astype(np.int64)
    first_at = np.concatenate([[0], np.flatnonzero(np.diff(comp[seq])) + 1])
    last_at = np.concatenate([first_at[1:], [seq.size]]) - 1
    return seq, first_at, last_at


def merge_chunk_graphs(
    parts: list[ChunkGraph],
    shape: tuple[int, int],
    scale: GroundScale,
    with_prob: bool,
) -> PixelGraph:
    """Stitch the chunks' graph structures into the graph of the whole skeleton.

    The result equals :func:`~roadseg.vectorize.graph.skeleton_graph` of the whole
    skeleton, node ids, edge ids and every array included: clusters of node pixels are
    joined across borders and numbered in the order of their first pixel (row, col);
    pieces are joined end to end where their exits meet into chains; open chains
    (numbered in the order of their first pixel) become edges walked from their lower
    end pixel, then isolated rings (in the same order) become closed edges starting at
    their first pixel and leaving it away from its lower neighbour.

    Raises:
        RoadsegError: the chunks do not agree across a border (an internal error).
    """
    _, width = shape
    graph = PixelGraph(scale, with_prob)
    if not parts or sum(p.pixels for p in parts) == 0:
        return graph
    nodes = _stitch_nodes(graph, parts, width, with_prob)
    # Pieces: vertex 2p is piece p's head (exit 0), 2p + 1 its tail (exit 1).
    piece_len = np.concatenate([p.piece_len for p in parts]).astype(np.int64)
    if piece_len.size:
        chains = _stitch_chains(parts, width, piece_len)
        _add_chain_edges(graph, parts, with_prob, chains, nodes)
    graph.drop_isolated_nodes()
    return graph


def _disagree() -> RoadsegError:
    return RoadsegError("the chunks' graphs do not agree across a border (internal error)")


def _node_index(node_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Where node pixels ``keys`` are in the sorted ``node_keys``."""
    at = np.minimum(np.searchsorted(node_keys, keys), max(node_keys.size - 1, 0))
    if keys.size and not np.array_equal(node_keys[at], keys):
        raise _disagree()
    return at


@dataclass
class _Nodes:
    """The graph's nodes made from the chunks' node pixels."""

    keys: np.ndarray  # node pixel keys, increasing
    cluster: np.ndarray  # the cluster of each node pixel
    node_of_cluster: np.ndarray  # the graph's node of each cluster

    def at(self, keys: np.ndarray) -> np.ndarray:
        """The graph's nodes of node pixels ``keys``."""
        return self.node_of_cluster[self.cluster[_node_index(self.keys, keys)]]


def _stitch_nodes(
    graph: PixelGraph, parts: list[ChunkGraph], width: int, with_prob: bool
) -> _Nodes:
    """Nodes: the local clusters joined across borders, numbered by first pixel."""
    node_keys = np.concatenate([p.node_keys for p in parts])
    label_base = np.cumsum([0] + [p.n_labels for p in parts])
    node_label = np.concatenate(
        [p.node_label.astype(np.int64) + b for p, b in zip(parts, label_base, strict=False)]
    )
    order = np.argsort(node_keys, kind="stable")
    node_keys, node_label = node_keys[order], node_label[order]
    node_hw = np.concatenate([p.node_hw for p in parts])[order]
    node_prob = None
    if with_prob:
        node_prob = np.concatenate([p.node_prob for p in parts])[order].astype(float)  # type: ignore[misc]
    cross = np.concatenate([p.cross for p in parts])
    pairs = node_label[_node_index(node_keys, cross.reshape(-1))].reshape(-1, 2)
    comp = components(int(label_base[-1]), pairs)[node_label]
    cluster = np.zeros(0, np.int64)
    node_of_cluster = np.zeros(0, np.int64)
    if node_keys.size:
        uniq, first = np.unique(comp, return_index=True)
        rank = np.empty(uniq.size, np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(uniq.size)
        cluster = rank[np.searchsorted(uniq, comp)]
        node_of_cluster = add_cluster_nodes(
            graph,
            cluster,
            (node_keys // width).astype(np.int32),
            (node_keys % width).astype(np.int32),
            node_hw,
            node_prob,
        )
    return _Nodes(node_keys, cluster, node_of_cluster)


@dataclass
class _Chains:
    """The chunks' pieces joined into chains, each in walking order."""

    rows: np.ndarray  # the pieces' pixels, as the chunks gave them
    cols: np.ndarray
    keys: np.ndarray
    exit_key: np.ndarray  # (2 * pieces,) the exit of each piece end
    seq: np.ndarray  # piece ends (vertices) in walking order, chain by chain
    cfirst: np.ndarray  # where each chain starts in seq
    clast: np.ndarray  # where each chain ends in seq
    idx: np.ndarray  # pixel indices of all chains, in walking order
    csize: np.ndarray  # pixels per chain
    n_open: int  # open chains (first), then rings


def _stitch_chains(parts: list[ChunkGraph], width: int, piece_len: np.ndarray) -> _Chains:
    """Join the pieces end to end where their exits meet (vertex 2p is piece p's
    head, 2p + 1 its tail) and walk each chain from its start: an open chain from
    its terminal end with the lower pixel, a ring from its lowest vertex. Chains
    come in the order of their first pixel, open ones first."""
    n_pieces = piece_len.size
    rows = np.concatenate([p.rows for p in parts])
    cols = np.concatenate([p.cols for p in parts])
    keys = rows.astype(np.int64) * width + cols
    exit_key = np.concatenate([p.exit_key for p in parts]).reshape(-1)
    exit_dir = np.concatenate([p.exit_dir for p in parts]).reshape(-1).astype(np.int64)
    exit_node = np.concatenate([p.exit_node for p in parts]).reshape(-1)
    pstart = np.concatenate([[0], np.cumsum(piece_len)[:-1]])
    end_key = np.stack([keys[pstart], keys[pstart + piece_len - 1]], axis=1).reshape(-1)
    # Links across borders: the exit (a, k) of one piece meets (a + k, 7 - k).
    is_link = (exit_key >= 0) & ~exit_node
    lv = np.flatnonzero(is_link)
    lid_ = end_key[lv] * 8 + exit_dir[lv]
    want = exit_key[lv] * 8 + (7 - exit_dir[lv])
    lorder = np.argsort(lid_)
    at = np.minimum(np.searchsorted(lid_, want, sorter=lorder), max(lv.size - 1, 0))
    if lv.size and not np.array_equal(lid_[lorder[at]], want):
        raise _disagree()
    partner = lv[lorder[at]]
    n_v = 2 * n_pieces
    inner = np.arange(n_v) ^ 1
    src = np.concatenate([np.arange(n_v), lv])
    dst = np.concatenate([inner, partner])
    links = sparse.csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n_v, n_v))
    _, chain = csgraph.connected_components(links, directed=False)
    n_chains = int(chain.max()) + 1
    terminal = exit_node
    n_term = np.bincount(chain, terminal, minlength=n_chains).astype(np.int64)
    if np.any((n_term != 0) & (n_term != 2)):
        raise _disagree()
    ring = n_term == 0
    # The start: an open chain's terminal end with the lower pixel (the head of
    # a single pixel: its first exit); a ring's lowest vertex, whose link is cut.
    tv = np.flatnonzero(terminal)
    tkey = end_key[tv] * 2 + (tv & 1)
    start = np.full(n_chains, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(start, chain[tv], tkey)
    start_v = np.full(n_chains, -1, np.int64)
    best = tkey == start[chain[tv]]
    start_v[chain[tv[best]]] = tv[best]
    if ring.any():
        lowest = np.full(n_chains, n_v, np.int64)
        np.minimum.at(lowest, chain, np.arange(n_v))
        start_v[ring] = lowest[ring]
        touches = np.isin(src, lowest[ring]) | np.isin(dst, lowest[ring])
        keep_link = ~touches | (dst == (src ^ 1))
        src, dst = src[keep_link], dst[keep_link]
        links = sparse.csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n_v, n_v))
    seq = walk_from(links, start_v)
    if seq.size != n_v:
        raise _disagree()
    # Chains in the order of their first pixel: open ones, then rings.
    pmin = np.minimum.reduceat(keys, pstart)
    cmin = np.full(n_chains, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(cmin, chain[0::2], pmin)
    rank_c = np.lexsort((cmin, ring))
    pos_c = np.empty(n_chains, np.int64)
    pos_c[rank_c] = np.arange(n_chains)
    seq = seq[np.argsort(pos_c[chain[seq]], kind="stable")]
    bounds = np.flatnonzero(np.diff(pos_c[chain[seq]])) + 1
    cfirst = np.concatenate([[0], bounds])
    clast = np.concatenate([bounds, [n_v]]) - 1
    enter = seq[0::2]  # each piece is entered at one end and left at the other
    piece = enter // 2
    # Pixel indices of all chains, in walking order.
    plen = piece_len[piece]
    out_start = np.concatenate([[0], np.cumsum(plen)[:-1]])
    i = np.arange(int(plen.sum())) - np.repeat(out_start, plen)
    base = np.repeat(pstart[piece], plen)
    forward = np.repeat((enter & 1) == 0, plen)
    idx = np.where(forward, base + i, base + np.repeat(plen, plen) - 1 - i)
    del i, base, forward
    csize = np.bincount(chain[0::2], piece_len, minlength=n_chains).astype(np.int64)[rank_c]
    n_open = int(np.count_nonzero(~ring))
    return _Chains(rows, cols, keys, exit_key, seq, cfirst, clast, idx, csize, n_open)


def _add_chain_edges(
    graph: PixelGraph, parts: list[ChunkGraph], with_prob: bool, ch: _Chains, nodes: _Nodes
) -> None:
    """Open chains become edges between the nodes beyond their ends; rings become
    closed edges starting at their first pixel, leaving it away from its lower
    neighbour."""
    n_open = ch.n_open
    hw_all = np.concatenate([p.hw for p in parts])
    prob_all = None
    if with_prob:
        prob_all = np.concatenate([p.prob for p in parts]).astype(float)  # type: ignore[misc]
    if n_open:
        # u: the node beyond the exit the walk starts from; v: beyond its last.
        u = nodes.at(ch.exit_key[ch.seq[ch.cfirst[:n_open]]])
        v = nodes.at(ch.exit_key[ch.seq[ch.clast[:n_open]]])
        sel = ch.idx[: int(ch.csize[:n_open].sum())]
        add_open_chains(
            graph,
            ch.csize[:n_open],
            u,
            v,
            ch.rows[sel],
            ch.cols[sel],
            hw_all[sel],
            None if prob_all is None else prob_all[sel],
        )
    done = int(ch.csize[:n_open].sum())
    for size in ch.csize[n_open:]:
        cyc = ch.idx[done : done + size]
        done += int(size)
        ck = ch.keys[cyc]
        s_ = int(np.argmin(ck))
        m = cyc.size
        step = -1 if ck[(s_ + 1) % m] < ck[(s_ - 1) % m] else 1
        cyc = cyc[(s_ + step * np.arange(m)) % m]
        add_ring(
            graph,
            ch.rows[cyc],
            ch.cols[cyc],
            hw_all[cyc],
            None if prob_all is None else prob_all[cyc],
        )
