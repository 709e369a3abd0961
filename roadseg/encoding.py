"""How roadseg's rasters store probabilities, masks and nodata, and the names of their tags.

This module is the one home of the encoding that ``roadseg predict`` writes and
that ``vectorize``, ``evaluate`` and the dataset scorer read back:

* probabilities as uint8: ``value = round(p * PROB_SCALE)`` (0..254), nodata
  ``PROB_NODATA`` (255), with GDAL band scale ``1 / PROB_SCALE`` so that QGIS
  and ``gdalinfo`` show true probabilities;
* probabilities as float32 (``--float``): ``p`` itself, nodata ``FLOAT_NODATA``
  (-1);
* masks as uint8: 1 road, 0 not road, nodata ``MASK_NODATA`` (255);
* ``ROADSEG_*`` GeoTIFF tags naming everything the result depends on;
  ``ROADSEG_VALUE`` says which of the encodings above a file holds.

Pure constants and numpy: importing it costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

#: uint8 probabilities are stored as ``round(p * PROB_SCALE)``: 0..254.
PROB_SCALE = 254
#: The uint8 probability value of pixels that have no prediction.
PROB_NODATA = 255
#: The float32 probability value of pixels that have no prediction.
FLOAT_NODATA = -1.0
#: The mask value of pixels that have no prediction (1 is road, 0 is not).
MASK_NODATA = 255

#: Every roadseg tag starts with this.
TAG_PREFIX = "ROADSEG_"

# Tags written by ``roadseg predict`` (and the Dask runner that must expect them).
TAG_VERSION = "ROADSEG_VERSION"
TAG_MODEL = "ROADSEG_MODEL"
TAG_MODEL_SHA256 = "ROADSEG_MODEL_SHA256"
TAG_TILE_SIZE = "ROADSEG_TILE_SIZE"
TAG_OVERLAP = "ROADSEG_OVERLAP"
TAG_BANDS = "ROADSEG_BANDS"
TAG_NORMALIZATION = "ROADSEG_NORMALIZATION"
TAG_THRESHOLD = "ROADSEG_THRESHOLD"
TAG_PRECISION = "ROADSEG_PRECISION"
TAG_TTA = "ROADSEG_TTA"
#: Written only when an engine other than TensorFlow computed the probabilities.
TAG_ENGINE = "ROADSEG_ENGINE"
#: Which encoding a file holds: see :func:`probability_value` and :func:`mask_value`.
TAG_VALUE = "ROADSEG_VALUE"
# Written when the input was read at the model's ground sample distance.
TAG_INPUT_GSD = "ROADSEG_INPUT_GSD"
TAG_RESAMPLED_GSD = "ROADSEG_RESAMPLED_GSD"

# Tags written by ``roadseg vectorize`` into its GeoPackage / GeoJSON metadata.
TAG_INPUT = "ROADSEG_INPUT"
TAG_INPUT_KIND = "ROADSEG_INPUT_KIND"
TAG_LOW = "ROADSEG_LOW"
TAG_MIN_AREA_M2 = "ROADSEG_MIN_AREA_M2"
TAG_HOLE_AREA_M2 = "ROADSEG_HOLE_AREA_M2"
TAG_SPUR_M = "ROADSEG_SPUR_M"
TAG_MERGE_M = "ROADSEG_MERGE_M"
TAG_GAP_M = "ROADSEG_GAP_M"
TAG_GAP_ANGLE_DEG = "ROADSEG_GAP_ANGLE_DEG"
TAG_SIMPLIFY_M = "ROADSEG_SIMPLIFY_M"

# Tags written by ``roadseg.synthetic`` into its scenes.
TAG_GENERATOR = "ROADSEG_GENERATOR"
TAG_SEED = "ROADSEG_SEED"
TAG_SIZE = "ROADSEG_SIZE"
#: The landscape setting of a synthetic scene (absent for the default countryside).
TAG_SETTING = "ROADSEG_SETTING"
TAG_MASK = "ROADSEG_MASK"

#: What ``ROADSEG_VALUE`` starts with in a probability raster, and in a mask.
PROBABILITY_PREFIX = "probability"
MASK_PREFIX = "1 = road"

ValueKind = Literal["probability", "mask"]


def probability_value(as_float: bool) -> str:
    """``ROADSEG_VALUE`` of a probability raster: float32 or uint8 scaled by 254."""
    return PROBABILITY_PREFIX if as_float else f"{PROBABILITY_PREFIX} * {PROB_SCALE}"


def mask_value(threshold: float) -> str:
    """``ROADSEG_VALUE`` of a mask made at ``threshold``."""
    return f"{MASK_PREFIX} (probability >= {threshold:g}), 0 = not road"


def value_kind(tags: Mapping[str, str]) -> ValueKind | None:
    """What a roadseg raster holds, from its ``ROADSEG_VALUE`` tag; None if it has none."""
    value = tags.get(TAG_VALUE, "")
    if value.startswith(PROBABILITY_PREFIX):
        return "probability"
    if value.startswith(MASK_PREFIX):
        return "mask"
    return None


def roadseg_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The ``ROADSEG_*`` entries of a raster's tags."""
    return {k: v for k, v in tags.items() if k.startswith(TAG_PREFIX)}


def encode_probability(prob: np.ndarray, valid: np.ndarray, as_float: bool) -> np.ndarray:
    """Probabilities as the output band stores them (see the module docstring)."""
    if as_float:
        return np.where(valid, prob, FLOAT_NODATA).astype(np.float32)
    return np.where(valid, np.rint(prob * PROB_SCALE), PROB_NODATA).astype(np.uint8)


def encode_mask(prob: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """The 0/1 road mask at ``threshold`` (``>=``), nodata where not ``valid``."""
    return np.where(valid, prob >= threshold, MASK_NODATA).astype(np.uint8)


#: The probability of each uint8 value of a ``roadseg predict`` raster (255, nodata, is 1).
UINT8_PROBABILITIES = np.minimum(np.arange(256) / PROB_SCALE, 1.0)
