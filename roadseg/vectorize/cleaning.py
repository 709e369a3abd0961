"""Cleaning the road mask exactly, chunk by chunk: thresholds and hysteresis,
speckle dropped and small holes filled as decisions about connected components of
the whole raster. Each chunk is labelled (:func:`analyse_chunk` on Dask), labels are
joined across chunk borders with a union-find (:class:`Cleaner`), and the decisions
are applied chunk by chunk (:func:`clean_chunk` on Dask)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from roadseg.errors import RoadsegError
from roadseg.vectorize.chunks import Chunk, ChunkFiles
from roadseg.vectorize.graph import components
from roadseg.vectorize.options import VectorizeOptions
from roadseg.vectorize.sources import RoadSource, SourceSpec

#: Blobs smaller than ``min_area_m2`` are still kept when their bounding box
#: spans at least this much (a thin road piece between two gaps is long, speckle
#: is compact).
KEEP_EXTENT_M = 10.0


_EIGHT = np.ones((3, 3), bool)
_FOUR = ndi.generate_binary_structure(2, 1)


@dataclass
class Thresholds:
    """A pixel is road at or above ``high``, or at or above ``low`` when connected to
    one at or above ``high`` (hysteresis; ``low == high`` without it)."""

    low: float
    high: float


def resolve_thresholds(source: RoadSource, options: VectorizeOptions) -> Thresholds:
    """The thresholds of ``source`` under ``options``: 0.5 for a mask; for
    probabilities the threshold asked for, else the one the raster states, else 0.5,
    and the low threshold of hysteresis (the threshold itself without it).

    Raises:
        RoadsegError: a low threshold above the threshold.
    """
    if source.kind == "mask":
        return Thresholds(0.5, 0.5)
    high = options.threshold
    if high is None:
        high = source.default_threshold if source.default_threshold is not None else 0.5
    low = options.low if options.low is not None else high
    if low > high:
        raise RoadsegError(
            f"low threshold {low} is above the threshold {high}; hysteresis needs low <= threshold"
        )
    return Thresholds(low, high)


def _foreground(values: np.ndarray, th: Thresholds) -> tuple[np.ndarray, np.ndarray | None]:
    with np.errstate(invalid="ignore"):
        fg = values >= th.low
        strong = values >= th.high if th.high > th.low else None
    return fg, strong


def _offset(labels: np.ndarray, offset: int) -> np.ndarray:
    """A copy of a strip of local labels as global ids (0 stays 0)."""
    out = labels.astype(np.int64)
    out[out > 0] += offset
    return out


def _pairs(a: np.ndarray, b: np.ndarray, offset: int) -> np.ndarray:
    """Label pairs (a[k], b[k + offset]) where both are non-zero, shape (n, 2)."""
    n = a.size
    if offset >= 0:
        x, y = a[: n - offset], b[offset:]
    else:
        x, y = a[-offset:], b[: n + offset]
    keep = (x > 0) & (y > 0)
    return np.stack([x[keep], y[keep]], axis=1)


@dataclass(frozen=True)
class _CleanParams:
    """What every chunk step of the cleaning needs (picklable: sent to Dask workers)."""

    th: Thresholds
    min_area: float  # integer cm^2
    hole_area: float  # integer cm^2
    row_area: np.ndarray  # ground area of a pixel in each raster row, cm^2
    height: int
    width: int

    @property
    def fill_holes(self) -> bool:
        return self.hole_area > 0


@dataclass
class _ChunkSummary:
    """Pass 1 of the cleaning for one chunk, in the chunk's own label numbers.

    Small next to the chunk: per-label statistics and the labels along the four
    borders. :meth:`Cleaner.merge` numbers the labels of all chunks in chunk order.
    """

    nf: int
    nb: int
    area: np.ndarray  # (nf,) road label areas, cm^2
    strength: np.ndarray | None  # (nf,) holds a strong pixel (hysteresis)
    box: np.ndarray  # (nf, 4) bounding boxes, global pixel indices
    strips: dict[str, np.ndarray]  # border labels: ft fb fl fr (road), bt bb bl br (background)
    barea: np.ndarray | None = None  # (nb,) background label areas, cm^2
    edge: np.ndarray | None = None  # (nb,) background label touches the raster's edge
    holes: np.ndarray | None = None  # (k, 2) (background label, road label) of small holes


def _label_chunk(
    source: RoadSource, chunk: Chunk, th: Thresholds, fill_holes: bool
) -> tuple[np.ndarray, int, np.ndarray | None, int, Any, Any]:
    """Read, threshold and label one chunk: road 8-connected, background 4-connected."""
    values = source.read(chunk.r0, chunk.r1, chunk.c0, chunk.c1)
    fg, strong = _foreground(values, th)
    del values
    fl, nf = ndi.label(fg, structure=_EIGHT)
    bl, nb = (None, 0)
    if fill_holes:
        bl, nb = ndi.label(~fg, structure=_FOUR)
    return fl, nf, bl, nb, fg, strong


def _road_stats(
    fl: np.ndarray,
    nf: int,
    fg: np.ndarray,
    strong: np.ndarray | None,
    chunk: Chunk,
    p: _CleanParams,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Area (integer cm^2, as float64: exact sums), strength and bounding box
    (row0, row1, col0, col1; global, inclusive) of every road label, from the
    road pixels only.

    Only labels smaller than ``min_area`` here need a box (larger ones are kept
    whatever their shape); the others get the chunk's box.
    """
    rr, cc = np.nonzero(fg)
    lab = fl[rr, cc]
    area = np.bincount(lab, p.row_area[chunk.r0 + rr], minlength=nf + 1)[1:]
    strength = None
    if strong is not None:
        strength = np.bincount(lab[strong[rr, cc]], minlength=nf + 1)[1:] > 0
    box = np.empty((nf, 4), np.int64)
    box[:] = (chunk.r0, chunk.r1 - 1, chunk.c0, chunk.c1 - 1)
    small = np.concatenate([[False], area < p.min_area])
    if small.any():
        pick = small[lab]
        lab_s, rr_s, cc_s = lab[pick] - 1, rr[pick] + chunk.r0, cc[pick] + chunk.c0
        sel = np.flatnonzero(small[1:])
        box[sel] = (np.iinfo(np.int64).max, -1, np.iinfo(np.int64).max, -1)
        np.minimum.at(box[:, 0], lab_s, rr_s)
        np.maximum.at(box[:, 1], lab_s, rr_s)
        np.minimum.at(box[:, 2], lab_s, cc_s)
        np.maximum.at(box[:, 3], lab_s, cc_s)
    return area, strength, box


def _background_areas(bl: np.ndarray, nb: int, chunk: Chunk, p: _CleanParams) -> np.ndarray:
    """Area of every background label (integer cm^2, as float64: exact sums).

    Counted by runs along rows: large labels make per-pixel counting slow
    (every increment hits the same counter), and runs are few.
    """
    h, w = bl.shape
    change = np.empty((h, w), bool)
    change[:, 0] = True
    np.not_equal(bl[:, 1:], bl[:, :-1], out=change[:, 1:])
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, h * w))
    labels = bl.reshape(-1)[starts]
    rows = p.row_area[chunk.r0 + starts // w]
    return np.bincount(labels, lengths * rows, minlength=nb + 1)[1:]


def _summarise_chunk(
    fl: np.ndarray,
    nf: int,
    bl: np.ndarray | None,
    nb: int,
    fg: np.ndarray,
    strong: np.ndarray | None,
    chunk: Chunk,
    p: _CleanParams,
) -> _ChunkSummary:
    """Pass 1 of the cleaning on one labelled chunk (see :class:`Cleaner`)."""
    area, strength, box = _road_stats(fl, nf, fg, strong, chunk, p)
    strips = {"ft": fl[0], "fb": fl[-1], "fl": fl[:, 0], "fr": fl[:, -1]}
    out = _ChunkSummary(nf, nb, area, strength, box, strips)
    if bl is not None:
        barea = _background_areas(bl, nb, chunk, p)
        edge = np.zeros(nb + 1, bool)
        if chunk.r0 == 0:
            edge[bl[0]] = True
        if chunk.r1 == p.height:
            edge[bl[-1]] = True
        if chunk.c0 == 0:
            edge[bl[:, 0]] = True
        if chunk.c1 == p.width:
            edge[bl[:, -1]] = True
        out.barea, out.edge = barea, edge[1:]
        # Road labels that touch each small background label (4-adjacency),
        # from the (few) pixels of small background labels.
        small = np.concatenate([[False], (barea < p.hole_area) & ~edge[1:]])
        if small.any():
            rr, cc = np.nonzero(small[bl])
            found = []
            h, w = bl.shape
            for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                r2, c2 = rr + dr, cc + dc
                ok = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
                a_lab = bl[rr[ok], cc[ok]]
                b_lab = fl[r2[ok], c2[ok]]
                m = b_lab > 0
                found.append(np.stack([a_lab[m], b_lab[m]], axis=1).astype(np.int64))
            out.holes = np.unique(np.concatenate(found), axis=0)
        strips.update(bt=bl[0], bb=bl[-1], bl=bl[:, 0], br=bl[:, -1])
    # Copies, so that the summary does not keep the chunk's label images alive.
    out.strips = {k: v.copy() for k, v in strips.items()}
    return out


def _apply_decisions(
    fl: np.ndarray, bl: np.ndarray | None, keep_fg: np.ndarray, keep_bg: np.ndarray | None
) -> np.ndarray:
    """The cleaned mask of one chunk from its labels and its labels' decisions."""
    out = keep_fg[fl]
    if bl is not None and keep_bg is not None:
        out |= keep_bg[bl]
    return out


class Cleaner:
    """Decides which pixels survive cleaning, exactly, chunk by chunk.

    Pass 1 (:meth:`analyse`) labels the road pixels (8-connected) and the background
    (4-connected) of every chunk, records each label's area (in integer cm^2, so sums
    do not depend on order), whether it holds a strong pixel (hysteresis), whether a
    background label touches the raster's edge, which road labels border each
    background label, and the labels along chunk borders (:func:`_summarise_chunk`).
    :meth:`merge` numbers the labels of all chunks in chunk order; a union-find over
    the border pairs gives the components of the whole raster; holes smaller than
    ``hole_area_m2`` join the road components around them; components smaller than
    ``min_area_m2`` or without a strong pixel are dropped.

    Pass 2 (:meth:`apply`) labels each chunk again (the same input gives the same
    labels) and looks the decisions up (:meth:`decisions`).
    """

    def __init__(
        self,
        source: RoadSource,
        chunks: list[Chunk],
        th: Thresholds,
        min_area_units: float,
        hole_area_units: float,
        row_area: np.ndarray,
        keep_extent_m: float,
        metric: np.ndarray,
    ) -> None:
        self.source = source
        self.chunks = chunks
        self.th = th
        self.min_area = min_area_units
        self.keep_extent = keep_extent_m
        self.metric = metric
        self.hole_area = hole_area_units
        self.fill_holes = hole_area_units > 0
        self.row_area = row_area
        self.params = _CleanParams(
            th, min_area_units, hole_area_units, row_area, source.height, source.width
        )
        self.counts: dict[tuple[int, int], tuple[int, int]] = {}
        self.fg_offset: dict[tuple[int, int], int] = {}
        self.bg_offset: dict[tuple[int, int], int] = {}
        self.keep_fg = np.zeros(1, bool)
        self.keep_bg = np.zeros(1, bool)
        self._cache: tuple[Chunk, np.ndarray, np.ndarray | None, np.ndarray] | None = None

    def _label(self, chunk: Chunk) -> tuple[np.ndarray, int, np.ndarray | None, int, Any, Any]:
        return _label_chunk(self.source, chunk, self.th, self.fill_holes)

    def _summaries_here(self) -> Iterator[tuple[int, _ChunkSummary]]:
        for k, chunk in enumerate(self.chunks):
            fl, nf, bl, nb, fg, strong = self._label(chunk)
            summary = _summarise_chunk(fl, nf, bl, nb, fg, strong, chunk, self.params)
            if len(self.chunks) == 1:
                self._cache = (chunk, fl, bl, np.zeros(0))
            yield k, summary

    def analyse(
        self,
        tick: Callable[[], None],
        summaries: Iterator[tuple[int, _ChunkSummary]] | None = None,
    ) -> None:
        """Pass 1 over every chunk, then the decisions.

        Args:
            tick: called as each chunk's summary arrives.
            summaries: ``(chunk index, summary)`` pairs in any order (from Dask);
                None: label the chunks here, one after the other.
        """
        got: list[_ChunkSummary | None] = [None] * len(self.chunks)
        for k, summary in summaries if summaries is not None else self._summaries_here():
            got[k] = summary
            tick()
        self.merge([s for s in got if s is not None])

    def merge(self, summaries: list[_ChunkSummary]) -> None:
        """Number the labels of all chunks (in chunk order), join them across chunk
        borders and decide which survive."""
        if len(summaries) != len(self.chunks):
            raise RoadsegError(
                f"cleaning got {len(summaries)} chunk summaries for {len(self.chunks)} chunks"
            )
        n_fg = 0
        n_bg = 0
        fg_area: list[np.ndarray] = []
        fg_strong: list[np.ndarray] = []
        fg_box: list[np.ndarray] = []
        bg_area: list[np.ndarray] = []
        bg_edge: list[np.ndarray] = []
        hole_pairs: list[np.ndarray] = []
        strips: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        for chunk, sm in zip(self.chunks, summaries, strict=True):
            key = (chunk.i, chunk.j)
            self.fg_offset[key] = n_fg
            self.bg_offset[key] = n_bg
            self.counts[key] = (sm.nf, sm.nb)
            fg_area.append(sm.area)
            fg_box.append(sm.box)
            if sm.strength is not None:
                fg_strong.append(sm.strength)
            s = {}
            for k, v in sm.strips.items():
                s[k] = _offset(v, n_fg if k[0] == "f" else n_bg)
            if sm.barea is not None and sm.edge is not None:
                bg_area.append(sm.barea)
                bg_edge.append(sm.edge)
                if sm.holes is not None:
                    hole_pairs.append(sm.holes + np.array([n_bg, n_fg], np.int64))
            strips[key] = s
            n_fg += sm.nf
            n_bg += sm.nb

        fg_pairs, bg_pairs, cross_holes = self._border_pairs(strips)
        hole_pairs.extend(cross_holes)
        self._decide(
            n_fg,
            n_bg,
            np.concatenate(fg_area) if fg_area else np.zeros(0),
            np.concatenate(fg_strong) if fg_strong else None,
            np.concatenate(fg_box) if fg_box else np.zeros((0, 4), np.int64),
            np.concatenate(bg_area) if bg_area else np.zeros(0),
            np.concatenate(bg_edge) if bg_edge else np.zeros(0, bool),
            fg_pairs,
            bg_pairs,
            np.concatenate(hole_pairs) if hole_pairs else np.zeros((0, 2), np.int64),
        )

    def _border_pairs(
        self, strips: dict[tuple[int, int], dict[str, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        rows = sorted({c.i for c in self.chunks})
        cols = sorted({c.j for c in self.chunks})
        fg_pairs: list[np.ndarray] = [np.zeros((0, 2), np.int64)]
        bg_pairs: list[np.ndarray] = [np.zeros((0, 2), np.int64)]
        holes: list[np.ndarray] = []

        def joined(keys: list[tuple[int, int]], name: str) -> np.ndarray:
            return np.concatenate([strips[k][name] for k in keys]).astype(np.int64)

        # Horizontal borders between chunk rows i and i + 1, over the full width:
        # 8-connectivity for road (offsets -1, 0, 1, corners included), 4 for background.
        for side_a, side_b, lines, other in (
            (("fb", "bb"), ("ft", "bt"), rows, cols),
            (("fr", "br"), ("fl", "bl"), cols, rows),
        ):
            for a, b in zip(lines[:-1], lines[1:], strict=True):
                if side_a[0] == "fb":
                    ka = [(a, j) for j in other]
                    kb = [(b, j) for j in other]
                else:
                    ka = [(i, a) for i in other]
                    kb = [(i, b) for i in other]
                fa, fb = joined(ka, side_a[0]), joined(kb, side_b[0])
                for off in (-1, 0, 1):
                    fg_pairs.append(_pairs(fa, fb, off))
                if self.fill_holes:
                    ba, bb = joined(ka, side_a[1]), joined(kb, side_b[1])
                    bg_pairs.append(_pairs(ba, bb, 0))
                    holes.append(_pairs(ba, fb, 0))
                    holes.append(_pairs(bb, fa, 0))
        return np.concatenate(fg_pairs), np.concatenate(bg_pairs), holes

    def _decide(
        self,
        n_fg: int,
        n_bg: int,
        fg_area: np.ndarray,
        fg_strong: np.ndarray | None,
        fg_box: np.ndarray,
        bg_area: np.ndarray,
        bg_edge: np.ndarray,
        fg_pairs: np.ndarray,
        bg_pairs: np.ndarray,
        hole_pairs: np.ndarray,
    ) -> None:
        n = n_fg + n_bg
        if n == 0:
            self.keep_fg = np.zeros(1, bool)
            self.keep_bg = np.zeros(1, bool)
            return
        # Stage 1: components of road and of background over the whole raster.
        links = [fg_pairs - 1]
        if n_bg:
            links.append(bg_pairs - 1 + n_fg)
        comp = components(n, np.concatenate(links))
        area_c = np.bincount(comp, np.concatenate([fg_area, bg_area]), minlength=comp.max() + 1)
        edge_c = np.zeros(comp.max() + 1, bool)
        if n_bg:
            np.logical_or.at(edge_c, comp[n_fg:], bg_edge)
        is_bg = np.zeros(n, bool)
        is_bg[n_fg:] = True
        hole = is_bg & (area_c[comp] < self.hole_area) & ~edge_c[comp]
        # Stage 2: small holes join the road around them; then area and strength.
        pairs = []
        if hole_pairs.size:
            hp = hole_pairs.astype(np.int64)
            bg_node = hp[:, 0] - 1 + n_fg
            fg_node = hp[:, 1] - 1
            ok = hole[bg_node]
            pairs.append(np.stack([comp[bg_node[ok]], comp[fg_node[ok]]], axis=1))
        ncomp = int(comp.max()) + 1
        merged = components(ncomp, np.concatenate(pairs) if pairs else np.zeros((0, 2), int))
        final = merged[comp]
        use = np.ones(n, bool)
        use[n_fg:] = hole[n_fg:]
        area_f = np.bincount(
            final[use], np.concatenate([fg_area, bg_area])[use], minlength=final.max() + 1
        )
        strong_f = np.ones(final.max() + 1, bool)
        if fg_strong is not None:
            strong_f = np.zeros(final.max() + 1, bool)
            np.logical_or.at(strong_f, final[:n_fg], fg_strong)
        # Small blobs go unless they are long (a thin road piece between two gaps).
        nf_ = final.max() + 1
        lo_r = np.full(nf_, np.iinfo(np.int64).max)
        hi_r = np.full(nf_, -1)
        lo_c = np.full(nf_, np.iinfo(np.int64).max)
        hi_c = np.full(nf_, -1)
        if n_fg:
            f = final[:n_fg]
            np.minimum.at(lo_r, f, fg_box[:, 0])
            np.maximum.at(hi_r, f, fg_box[:, 1])
            np.minimum.at(lo_c, f, fg_box[:, 2])
            np.maximum.at(hi_c, f, fg_box[:, 3])
        span = np.stack([hi_r - lo_r + 1, hi_c - lo_c + 1], axis=1).astype(float)
        span[hi_r < 0] = 0.0
        extent = np.hypot(*(span @ self.metric.T).T)
        keep = ((area_f >= self.min_area) | (extent >= self.keep_extent)) & strong_f
        self.keep_fg = np.concatenate([[False], keep[final[:n_fg]]])
        self.keep_bg = np.concatenate([[False], hole[n_fg:] & keep[final[n_fg:]]])

    def decisions(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray | None]:
        """Keep-or-drop of each of one chunk's local road and background labels
        (index 0, no label, is dropped)."""
        key = (chunk.i, chunk.j)
        nf, nb = self.counts[key]
        off, boff = self.fg_offset[key], self.bg_offset[key]
        keep_fg = np.concatenate([[False], self.keep_fg[off + 1 : off + nf + 1]])
        keep_bg = None
        if self.fill_holes:
            keep_bg = np.concatenate([[False], self.keep_bg[boff + 1 : boff + nb + 1]])
        return keep_fg, keep_bg

    def apply(self, chunk: Chunk) -> np.ndarray:
        """The cleaned mask of one chunk (bool)."""
        if self._cache is not None and self._cache[0] == chunk:
            _, fl, bl, _ = self._cache
            self._cache = None
        else:
            fl, _, bl, _, _, _ = self._label(chunk)
        return _apply_decisions(fl, bl, *self.decisions(chunk))


def analyse_chunk(chunk: Chunk, spec: SourceSpec, params: _CleanParams) -> _ChunkSummary:
    """Pass 1 of the cleaning for one chunk, on a worker that opens the raster itself."""
    with spec.open() as source:
        labelled = _label_chunk(source, chunk, params.th, params.fill_holes)
    return _summarise_chunk(*labelled, chunk, params)


def clean_chunk(
    item: tuple[Chunk, np.ndarray, np.ndarray | None],
    spec: SourceSpec,
    params: _CleanParams,
    store: ChunkFiles,
) -> int:
    """Pass 2 of the cleaning for one chunk: label it again, keep what was decided,
    write the chunk's file. Returns the road pixels kept."""
    chunk, keep_fg, keep_bg = item
    with spec.open() as source:
        fl, _, bl, _, _, _ = _label_chunk(source, chunk, params.th, params.fill_holes)
    block = _apply_decisions(fl, bl, keep_fg, keep_bg)
    store.write(chunk, block)
    return int(np.count_nonzero(block))
