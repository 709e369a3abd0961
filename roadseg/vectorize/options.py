"""Options of the vector flow and what it returns: :class:`VectorizeOptions`,
:class:`RoadNetwork` (the network in memory) and :class:`VectorizeResult` (what
:func:`~roadseg.vectorize.vectorize_raster` wrote)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from shapely.geometry import LineString

from roadseg.errors import RoadsegError
from roadseg.vectorize.sources import RasterKind


@dataclass(frozen=True)
class VectorizeOptions:
    """Options of the vector flow. Lengths in metres, areas in square metres.

    Attributes:
        threshold: probability at which a pixel counts as road (probability input
            only). None: the raster's ``ROADSEG_THRESHOLD`` tag (written by
            ``roadseg predict``) or 0.5.
        low: optional lower threshold for hysteresis: pixels at or above ``low`` are
            road when they are connected to a pixel at or above ``threshold``.
        min_area_m2: blobs of road pixels smaller than this are dropped.
        hole_area_m2: holes in the road mask smaller than this are filled.
        spur_m: side branches that end within this distance beyond the road's edge
            are pruned; isolated fragments shorter than this are dropped.
        merge_m: junctions closer than this (or inside each other's road body) merge.
        gap_m: gaps up to this long between end points are bridged when the
            directions of both ends agree with the bridge; 0 disables bridging.
        gap_angle_deg: largest angle between an end's direction and the bridge.
        simplify_m: Douglas-Peucker tolerance; 0 keeps every pixel vertex.
        chunk_size: side of the square chunks, pixels (a multiple of 8, >= 64).
        halo: initial halo around each chunk, pixels; it grows by itself when a
            window's thinning needs more (very wide roads or plazas).
        overwrite: replace an existing output file.
        progress: show a tqdm progress bar.
    """

    threshold: float | None = None
    low: float | None = None
    min_area_m2: float = 30.0
    hole_area_m2: float = 30.0
    spur_m: float = 6.0
    merge_m: float = 5.0
    gap_m: float = 12.0
    gap_angle_deg: float = 35.0
    simplify_m: float = 0.5
    chunk_size: int = 2048
    halo: int = 128
    overwrite: bool = False
    progress: bool = False

    def validate(self) -> None:
        """Check the options.

        Raises:
            RoadsegError: a value out of range, with what was received.
        """
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise RoadsegError(f"threshold must lie between 0 and 1, got {self.threshold}")
        if self.low is not None:
            if not 0.0 < self.low < 1.0:
                raise RoadsegError(f"low threshold must lie between 0 and 1, got {self.low}")
            if self.threshold is not None and self.low > self.threshold:
                raise RoadsegError(
                    f"low threshold {self.low} is above the threshold {self.threshold}; "
                    "hysteresis needs low <= threshold"
                )
        for name in ("min_area_m2", "hole_area_m2", "spur_m", "merge_m", "gap_m", "simplify_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise RoadsegError(f"{name} must be a non-negative number, got {value}")
        if not 0.0 < self.gap_angle_deg <= 90.0:
            raise RoadsegError(f"gap angle must lie in (0, 90] degrees, got {self.gap_angle_deg}")
        if self.chunk_size < 64 or self.chunk_size % 8:
            raise RoadsegError(
                f"chunk size must be a multiple of 8 and at least 64, got {self.chunk_size}"
            )
        if self.halo < 8:
            raise RoadsegError(f"halo must be at least 8 pixels, got {self.halo}")


@dataclass(frozen=True)
class RoadNetwork:
    """A road network: noded LineStrings in the raster's CRS, with attributes.

    Columns are parallel arrays, one entry per line. ``prob_mean`` and
    ``prob_min`` are None unless the input held probabilities.
    """

    lines: tuple[LineString, ...]
    length_m: np.ndarray
    width_m: np.ndarray
    start_node: np.ndarray
    end_node: np.ndarray
    prob_mean: np.ndarray | None
    prob_min: np.ndarray | None
    nodes: np.ndarray  # (n, 2) map x, y
    node_degree: np.ndarray
    crs: Any
    transform: Affine

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def junctions(self) -> int:
        """Nodes where three or more lines meet."""
        return int(np.count_nonzero(self.node_degree >= 3))

    @property
    def total_length_m(self) -> float:
        return float(self.length_m.sum()) if len(self.lines) else 0.0

    def properties(self) -> dict[str, list[Any]]:
        """The attribute columns as plain Python lists, in output order."""
        cols: dict[str, list[Any]] = {
            "length_m": [round(float(v), 3) for v in self.length_m],
            "width_m": [None if not np.isfinite(v) else round(float(v), 2) for v in self.width_m],
        }
        if self.prob_mean is not None and self.prob_min is not None:
            cols["prob_mean"] = [_opt_round(v, 4) for v in self.prob_mean]
            cols["prob_min"] = [_opt_round(v, 4) for v in self.prob_min]
        cols["start_node"] = [int(v) for v in self.start_node]
        cols["end_node"] = [int(v) for v in self.end_node]
        return cols


def _opt_round(value: float, digits: int) -> float | None:
    return None if not np.isfinite(value) else round(float(value), digits)


@dataclass(frozen=True)
class VectorizeResult:
    """What :func:`~roadseg.vectorize.pipeline.vectorize_raster` wrote."""

    output: Path
    lines: int
    junctions: int
    length_m: float
    kind: RasterKind
    threshold: float | None
    halo: int
    seconds: float
    warnings: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    where: str = "in-process"
