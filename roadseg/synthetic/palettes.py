"""Colours and the scene-wide style: season palettes, roofs, water and cars, and the
:class:`Style` (season, sun, land-cover shares, camera response) drawn once per scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_F32 = np.float32


# fmt: off
#: Seasons: field palette, meadow, bare soil, forest canopy, tree crowns (RGB).
SEASONS: dict[str, dict[str, list[tuple[int, int, int]]]] = {
    "summer": {
        "fields": [
            (84, 116, 50), (108, 138, 60), (148, 158, 88), (180, 166, 106),
            (126, 104, 76), (96, 128, 66), (160, 150, 96), (70, 100, 48),
        ],
        "meadow": [(98, 126, 66), (112, 134, 74), (88, 112, 60)],
        "soil": [(142, 118, 88), (124, 104, 80), (160, 136, 104)],
        "forest": [(44, 66, 38), (52, 74, 44), (40, 58, 40)],
        "crown": [(52, 82, 44), (62, 92, 50), (44, 70, 42), (72, 96, 56)],
    },
    "dry": {
        "fields": [
            (198, 182, 124), (212, 196, 146), (172, 152, 104), (124, 132, 74),
            (152, 124, 92), (186, 170, 128), (140, 140, 86), (204, 176, 130),
        ],
        "meadow": [(146, 144, 94), (132, 136, 84), (158, 150, 104)],
        "soil": [(166, 138, 102), (150, 124, 94), (180, 152, 114)],
        "forest": [(56, 72, 44), (64, 80, 48), (50, 64, 42)],
        "crown": [(64, 86, 50), (74, 94, 56), (58, 78, 46), (86, 100, 60)],
    },
    "ploughed": {
        "fields": [
            (116, 92, 70), (96, 80, 64), (136, 112, 84), (100, 122, 62),
            (160, 142, 106), (84, 70, 58), (124, 132, 78), (148, 120, 90),
        ],
        "meadow": [(104, 124, 74), (116, 130, 80), (96, 114, 68)],
        "soil": [(124, 100, 78), (110, 90, 72), (140, 116, 88)],
        "forest": [(66, 66, 46), (58, 68, 44), (80, 70, 50)],
        "crown": [(96, 86, 56), (70, 84, 50), (120, 96, 60), (84, 90, 56)],
    },
    "winter": {
        "fields": [
            (234, 237, 242), (224, 228, 236), (214, 214, 216), (238, 240, 244),
            (156, 142, 122), (200, 198, 196), (228, 230, 236), (182, 176, 168),
        ],
        "meadow": [(226, 229, 236), (214, 218, 226), (198, 198, 200)],
        "soil": [(150, 136, 118), (170, 160, 148), (132, 122, 110)],
        "forest": [(42, 50, 48), (50, 56, 52), (60, 58, 56)],
        "crown": [(46, 58, 50), (90, 84, 78), (106, 96, 86), (60, 66, 58)],
    },
    "arid": {
        "fields": [
            (190, 170, 134), (172, 152, 122), (120, 130, 80), (200, 180, 144),
            (160, 146, 118), (104, 120, 70), (184, 160, 124), (210, 190, 156),
        ],
        "meadow": [(166, 152, 116), (150, 140, 106), (176, 160, 124)],
        "soil": [(200, 176, 140), (186, 160, 126), (214, 190, 154)],
        "forest": [(88, 96, 64), (96, 100, 70), (80, 88, 60)],
        "crown": [(78, 94, 58), (92, 104, 66), (70, 84, 52), (104, 110, 72)],
    },
}
#: How often each season is drawn (the order of the keys is part of every scene).
SEASON_P = {"summer": 0.42, "dry": 0.2, "ploughed": 0.2, "winter": 0.08, "arid": 0.1}

#: Roof colours (RGB).
ROOFS = np.array(
    [
        (168, 82, 62), (150, 70, 56), (124, 62, 52), (186, 104, 78), (122, 122, 126),
        (90, 92, 98), (70, 72, 80), (130, 100, 80), (196, 194, 188), (160, 158, 150),
        (96, 106, 120), (100, 122, 104), (176, 150, 120), (140, 136, 130),
    ],
    dtype=_F32,
)

#: River colours (RGB).
WATER = np.array(
    [(52, 84, 94), (66, 94, 80), (92, 88, 68), (40, 56, 70), (60, 98, 104), (78, 90, 70)],
    dtype=_F32,
)

#: Car paints (RGB).
CARS = np.array(
    [(225, 225, 222), (190, 192, 196), (40, 42, 46), (90, 92, 98), (150, 30, 30),
     (40, 60, 120), (200, 200, 205), (30, 30, 34), (120, 124, 130), (60, 80, 60)],
    dtype=_F32,
)
# fmt: on


@dataclass(frozen=True)
class Style:
    """Scene-wide look: season, light, land-cover proportions, camera response."""

    season: str
    fields: np.ndarray  # (k, 3) float32
    meadow: np.ndarray
    soil: np.ndarray
    forest: np.ndarray
    crown: np.ndarray
    sun: tuple[float, float]  # unit vector towards the sun (x right, y down)
    shadow_len: float  # shadow length per unit object height
    shadow_rgb: tuple[float, float, float]
    parcel: int  # mean field size (px)
    field_angle: float
    p_classes: tuple[float, float, float, float]  # field, meadow, soil, forest parcels
    forest_thr: float  # threshold on the forest noise (higher = less forest)
    forest_cell: float  # tree crown size in forests (px)
    urban: float
    road_frac: float  # target share of road pixels
    gains: tuple[float, float, float]
    brightness: float
    contrast: float
    saturation: float
    haze: float
    haze_rgb: tuple[float, float, float]
    blur: tuple[float, float, float, float, float]  # 5-tap kernel
    noise: float  # sensor noise, DN


def make_style(rng: np.random.Generator) -> Style:
    """Draw the look of one scene: the first draws of the scene's generator."""
    seasons = list(SEASON_P)
    season = seasons[rng.choice(len(seasons), p=list(SEASON_P.values()))]
    pal = SEASONS[season]
    az = rng.uniform(0, 2 * math.pi)
    elev = rng.uniform(0.35, 1.0)  # shadow length per unit height = 1 / tan(elevation)
    forest_share = rng.uniform(0.0, 0.35)
    sigma = rng.uniform(0.45, 0.95)
    k = [math.exp(-(i * i) / (2 * sigma * sigma)) for i in (-2, -1, 0, 1, 2)]
    k = [v / sum(k) for v in k]
    dark = rng.uniform(0.42, 0.6)
    haze_rgb = (rng.uniform(170, 200), rng.uniform(180, 205), rng.uniform(190, 220))
    p_forest = rng.uniform(0.0, 0.12)
    p_soil = rng.uniform(0.05, 0.2)
    p_meadow = rng.uniform(0.1, 0.35)
    urban = rng.uniform(0.0, 1.0)
    return Style(
        season=season,
        fields=np.array(pal["fields"], dtype=_F32),
        meadow=np.array(pal["meadow"], dtype=_F32),
        soil=np.array(pal["soil"], dtype=_F32),
        forest=np.array(pal["forest"], dtype=_F32),
        crown=np.array(pal["crown"], dtype=_F32),
        sun=(math.cos(az), math.sin(az)),
        shadow_len=1.0 / math.tan(elev),
        shadow_rgb=(dark, dark * rng.uniform(1.02, 1.1), dark * rng.uniform(1.1, 1.3)),
        parcel=int(rng.integers(150, 330)),
        field_angle=rng.uniform(0, math.pi),
        p_classes=(1.0 - p_forest - p_soil - p_meadow, p_meadow, p_soil, p_forest),
        # The forest noise is roughly N(0.5, 0.13); pick the quantile for the share.
        forest_thr=0.5 + 0.13 * _normal_quantile(1.0 - forest_share),
        forest_cell=rng.uniform(8.0, 15.0),
        urban=urban,
        road_frac=0.05 + 0.05 * urban + rng.uniform(0.0, 0.025),
        gains=(rng.uniform(0.92, 1.08), rng.uniform(0.94, 1.06), rng.uniform(0.9, 1.1)),
        brightness=rng.uniform(0.85, 1.12),
        contrast=rng.uniform(0.85, 1.2),
        saturation=rng.uniform(0.6, 1.15),
        haze=rng.uniform(0.0, 0.18),
        haze_rgb=haze_rgb,
        blur=(k[0], k[1], k[2], k[3], k[4]),
        noise=rng.uniform(1.0, 4.0),
    )


def _normal_quantile(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, |error| < 1e-8)."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    # fmt: off
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687,
         138.3577518672690, -30.66479806614716, 2.506628277459239)
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866,
         66.80131188771972, -13.28068155288572)
    c = (-7.784894002430293e-03, -0.3223964580411365, -2.400758277161838,
         -2.549732539343734, 4.374664141464968, 2.938163982698783)
    d = (7.784695709041462e-03, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    # fmt: on
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
        return num / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - 0.02425:
        return -_normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    return num / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
