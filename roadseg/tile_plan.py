"""The tile plan of one raster (:class:`Plan`) and the tile rows a range of
image rows needs (:func:`tile_rows_for`): what the reader, the blender and
:func:`roadseg.predict.predict_rows` share."""

from __future__ import annotations

from dataclasses import dataclass

from roadseg.preprocess import Normalizer
from roadseg.tiling import Span


@dataclass
class Plan:
    """The tiles of one raster: its size, the tile and overlap, the spans of
    the tile rows and columns (reflected past the edges), the bands read and
    the normaliser applied to them."""

    height: int
    width: int
    tile: int
    overlap: int
    rows: list[Span]
    cols: list[Span]
    bands: tuple[int, ...]
    normalizer: Normalizer

    @property
    def n_tiles(self) -> int:
        """Tiles in the whole plan."""
        return len(self.rows) * len(self.cols)


def tile_rows_for(plan: Plan, start: int, stop: int) -> tuple[int, int]:
    """The first and last tile rows whose blended output covers image rows
    ``start`` to ``stop`` (exclusive) exactly as a run over the whole raster
    does: every tile row that touches them, from the first whose span ends
    below ``start`` to the one after which every row above ``stop`` is final."""
    rows = plan.rows
    first = next((i for i, r in enumerate(rows) if r.stop > start), len(rows))
    last = next(
        (i for i in range(first, len(rows) - 1) if rows[i + 1].start >= stop), len(rows) - 1
    )
    return first, last
