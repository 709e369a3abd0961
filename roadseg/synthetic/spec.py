"""The public value types of a scene: its specification, the rendered scene, the
files written, and the size rule every entry point checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry import LineString

#: Largest scene side accepted (pixel coordinates stay exact in float32 far beyond it).
MAX_SIZE = 65536


@dataclass(frozen=True)
class SceneSpec:
    """Everything that defines a scene besides its size.

    Attributes:
        seed: non-negative integer; the same seed and size give the same scene.
        gsd: ground sample distance, metres per pixel (georeferencing only).
        crs: projected CRS of the written GeoTIFFs (anything rasterio accepts).
        origin: map x, y of the top-left corner of the top-left pixel.
        setting: the kind of landscape, a key of
            :data:`roadseg.synthetic.settings.SETTINGS` (countryside, suburbs, city,
            rural, forest, highway, desert).
    """

    seed: int = 0
    gsd: float = 0.5
    crs: str = "EPSG:32633"
    origin: tuple[float, float] = (500000.0, 5500000.0)
    setting: str = "countryside"

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not (isinstance(self.gsd, (int, float)) and math.isfinite(self.gsd) and self.gsd > 0):
            raise ValueError(f"gsd must be a positive number of metres per pixel, got {self.gsd!r}")
        if not isinstance(self.crs, str) or not self.crs:
            raise ValueError(f"crs must be a CRS string such as 'EPSG:32633', got {self.crs!r}")
        origin = tuple(float(v) for v in self.origin)
        if len(origin) != 2 or not all(math.isfinite(v) for v in origin):
            raise ValueError(f"origin must be two finite map coordinates, got {self.origin!r}")
        from roadseg.synthetic.settings import SETTINGS

        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {', '.join(SETTINGS)}, got {self.setting!r}")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "gsd", float(self.gsd))
        object.__setattr__(self, "origin", origin)


@dataclass(frozen=True)
class Scene:
    """A rendered scene.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8, 1 = road surface, 0 = not road.
        centerlines: road centerlines in pixel coordinates (x = col + 0.5 and
            y = row + 0.5 at pixel centres), clipped to the scene, one per road
            segment, curve or roundabout ring.
        widths: road width in pixels, one per centerline.
    """

    image: np.ndarray
    mask: np.ndarray
    centerlines: list[LineString]
    widths: list[float]


@dataclass(frozen=True)
class ScenePaths:
    """The three files :func:`write_scene` writes."""

    image: Path
    mask: Path
    centerlines: Path


def check_size(height: int, width: int) -> tuple[int, int]:
    """The scene size as plain ints.

    Raises:
        ValueError: if a side is not an integer in 1..MAX_SIZE.
    """
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_SIZE:
            raise ValueError(f"scene {name} must be an integer in 1..{MAX_SIZE}, got {v!r}")
    return int(height), int(width)
