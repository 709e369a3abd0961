"""The grid of one rendered window (global rows, columns and pixel centres) and the
rasterisation of lines onto it as signed distances to their edges.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from roadseg.synthetic.elements import SegTable

_F32 = np.float32


class Canvas:
    """The grid of one window (plus halo): global rows/cols and pixel centres."""

    def __init__(self, row0: int, col0: int, h: int, w: int) -> None:
        self.rows = np.arange(row0, row0 + h, dtype=np.int64)
        self.cols = np.arange(col0, col0 + w, dtype=np.int64)
        self.ys = (self.rows + 0.5).astype(_F32)
        self.xs = (self.cols + 0.5).astype(_F32)
        self.row0, self.col0, self.h, self.w = row0, col0, h, w

    def clip(self, box: np.ndarray) -> Iterator[tuple[int, slice, slice]]:
        """Objects whose pixel boxes meet the canvas, with their local slices."""
        if not len(box):
            return
        c0, c1 = self.col0, self.col0 + self.w - 1
        r0, r1 = self.row0, self.row0 + self.h - 1
        sel = np.nonzero(
            (box[:, 0] <= c1) & (box[:, 1] >= c0) & (box[:, 2] <= r1) & (box[:, 3] >= r0)
        )[0]
        lo_c = np.maximum(box[sel, 0], c0) - c0
        hi_c = np.minimum(box[sel, 1], c1) - c0 + 1
        lo_r = np.maximum(box[sel, 2], r0) - r0
        hi_r = np.minimum(box[sel, 3], r1) - r0 + 1
        for k, a, b, c, d in zip(
            sel.tolist(), lo_r.tolist(), hi_r.tolist(), lo_c.tolist(), hi_c.tolist(), strict=True
        ):
            yield k, slice(a, b), slice(c, d)


def rasterise_lines(
    cv: Canvas, segs: SegTable, want_s: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Signed edge distance (distance to the centreline minus half width) of the
    nearest-edged line at every pixel, the index of that line, and optionally the
    arc length along it (for lines flagged in ``want_s``).

    Pixels farther than a line's box from every line get +inf and index -1.
    """
    best = np.full((cv.h, cv.w), np.inf, dtype=_F32)
    owner = np.full((cv.h, cv.w), -1, dtype=np.int32)
    arc = np.zeros((cv.h, cv.w), dtype=_F32) if want_s is not None else None
    for k, rs, cs in cv.clip(segs.box):
        dx = cv.xs[cs] - segs.ax[k]
        dy = cv.ys[rs] - segs.ay[k]
        t = (dy * segs.uy[k])[:, None] + dx * segs.ux[k]
        np.clip(t, 0, 1, out=t)
        qx = dx - t * segs.ex[k]
        qy = dy[:, None] - t * segs.ey[k]
        e = np.sqrt(qx * qx + qy * qy) - segs.hw[k]
        sub = best[rs, cs]
        m = e < sub
        sub[m] = e[m]
        line = segs.owner[k]
        owner[rs, cs][m] = line
        if arc is not None and want_s is not None and want_s[line]:
            arc[rs, cs][m] = (segs.s0[k] + t * segs.ln[k])[m]
    return best, owner, arc
