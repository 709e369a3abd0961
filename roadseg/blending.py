"""The row blender of a prediction run: tile outputs weighted by a smooth
window, summed in a buffer one tile row high, and handed on as finished image
rows as soon as no later tile can touch them (:class:`RowBlender`)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from roadseg.tile_plan import Plan
from roadseg.tiling import weight_window

#: Rows per piece handed to the writer; divides its 256-row block.
PIECE_ROWS = 64

#: Columns of the weight sum computed at a time when rows are finished.
WEIGHT_CHUNK_PX = 1024


class RowBlender:
    """Accumulates weighted tile outputs for the current tile row.

    The buffer is one tile high and spans the padded width. After tile row i
    is complete, the rows above the start of tile row i + 1 are final.

    The sum of the weights is not kept beside it (another buffer as large):
    it depends only on the tile grid, and :meth:`_weight_sum` computes it for
    the finished rows, a column chunk at a time, adding the same weights in
    the same order as a running sum would, so its bits are the same.
    """

    def __init__(self, plan: Plan, first: int = 0) -> None:
        self.plan = plan
        self.c0 = plan.cols[0].start
        width = plan.cols[-1].stop - self.c0
        self.acc = np.zeros((plan.tile, width), dtype=np.float32)
        self.weights = weight_window(plan.tile, plan.overlap)
        self.first = first  # earlier tile rows are never added
        self.top = plan.rows[first].start  # image row of acc[0]
        self.done_row = 0  # image row of the first row _finish last returned
        self.pending = [len(plan.cols)] * len(plan.rows)
        self._col_starts = np.array([c.start - self.c0 for c in plan.cols])

    def add(self, i: int, j: int, prob: np.ndarray) -> np.ndarray | None:
        """Add one tile; return finished image rows when tile row ``i`` completes."""
        rspan, cspan = self.plan.rows[i], self.plan.cols[j]
        r = rspan.start - self.top
        c = cspan.start - self.c0
        t = self.plan.tile
        self.acc[r : r + t, c : c + t] += prob * self.weights
        self.pending[i] -= 1
        if self.pending[i]:
            return None
        end = self.plan.rows[i + 1].start if i + 1 < len(self.plan.rows) else rspan.stop
        return self._finish(i, end)

    def pieces(
        self, done: np.ndarray, valid: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The rows :meth:`add` just returned, with their validity mask, cut
        at image rows that are multiples of :data:`PIECE_ROWS`.

        The writer buffers rows until it has a whole 256-row block, and keeps
        what lies beyond it; given 192-row blocks it held and copied up to 448
        rows of float32 (29 MB at 16384 px wide). Pieces that end on a
        multiple of 64 fill its blocks exactly, so it never holds more than
        one block, and a full queue holds a quarter as much.
        """
        row = self.done_row
        k = 0
        while k < done.shape[0]:
            step = PIECE_ROWS - (row + k) % PIECE_ROWS
            yield done[k : k + step], valid[k : min(k + step, done.shape[0])]
            k += step

    def _finish(self, i: int, end: int) -> np.ndarray:
        n = end - self.top
        lo = max(0, -self.top)  # skip reflected rows above the image
        self.done_row = self.top + lo
        hi = min(n, self.plan.height - self.top)
        done = np.empty((max(hi - lo, 0), self.plan.width), dtype=np.float32)
        for x0 in range(0, self.plan.width, WEIGHT_CHUNK_PX):
            x1 = min(x0 + WEIGHT_CHUNK_PX, self.plan.width)
            b0, b1 = x0 - self.c0, x1 - self.c0  # buffer columns
            wsum = self._weight_sum(i, self.top + lo, self.top + hi, b0, b1)
            np.divide(self.acc[lo:hi, b0:b1], wsum, out=done[:, x0:x1])
        # Slide the buffer up by n rows.
        self.acc[:-n] = self.acc[n:]
        self.acc[-n:] = 0.0
        self.top = end
        return done

    def _weight_sum(self, i: int, r0: int, r1: int, b0: int, b1: int) -> np.ndarray:
        """Sum of the weights of tile rows ``first..i`` over image rows
        ``[r0, r1)`` and buffer columns ``[b0, b1)``.

        Added tile row by tile row, then column by column, from 0: the order
        in which :meth:`add` adds the tiles, so every float32 value is what a
        running sum of whole weight windows would hold.
        """
        t = self.plan.tile
        out = np.zeros((max(r1 - r0, 0), b1 - b0), dtype=np.float32)
        ks = []
        k = i
        while k >= self.first and self.plan.rows[k].stop > r0:
            ks.append(k)
            k -= 1
        starts = self._col_starts
        j0 = int(np.searchsorted(starts + t, b0, side="right"))
        j1 = int(np.searchsorted(starts, b1, side="left"))
        for k in reversed(ks):
            rs = self.plan.rows[k]
            a, b = max(r0, rs.start), min(r1, rs.stop)
            if a >= b:
                continue
            for c in starts[j0:j1]:
                ca, cb = max(b0, c), min(b1, c + t)
                out[a - r0 : b - r0, ca - b0 : cb - b0] += self.weights[
                    a - rs.start : b - rs.start, ca - c : cb - c
                ]
        return out
