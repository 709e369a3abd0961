"""What an exported model file says about itself: roadseg's model metadata and
the keys the QGIS Deepness plugin reads.

Every value is a JSON text, as Deepness parses each with ``json.loads``
(``deepness/processing/models/model_base.py``). Keys, following Deepness's
"Adding metadata to ONNX model" and "Model classes and requirements" pages
(PUTvision/qgis-plugin-deepness, ``docs/source/creators/``):

=================  ===========================================================
``roadseg``        :class:`roadseg.model.ModelInfo` as JSON (bands,
                   normalization, tile size, GSD, threshold, filters,
                   provenance): everything roadseg needs to use the model.
``model_type``     ``"Segmentor"``.
``class_names``    ``{"0": "road"}``: a one-channel sigmoid output names its
                   one class under 0; Deepness adds the background itself.
``resolution``     the model's GSD in centimetres per pixel (when known).
``tiles_size``     the training tile size in pixels (Deepness's documented
                   key); also written as ``tile_size``, the key its code
                   reads.
``tiles_overlap``  roadseg's default overlap, in percent of the tile.
``seg_thresh``     the model's probability threshold.
=================  ===========================================================

Not written: ``standardization_mean``/``standardization_std``. Deepness
divides uint8 pixels by 255 and then would standardise; roadseg's inputs are
already 0-1 (uint8 / 255, or a 2-98 percentile stretch per band of the whole
raster), which no fixed mean and deviation reproduce.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from roadseg.model import ModelInfo

if TYPE_CHECKING:
    import onnx

#: The metadata key holding roadseg's own :class:`~roadseg.model.ModelInfo`.
ROADSEG_KEY = "roadseg"
#: Deepness's model type of a per-pixel classifier.
DEEPNESS_MODEL_TYPE = "Segmentor"
#: The name of the one class roadseg's models predict.
CLASS_NAME = "road"


def overlap_percent(overlap: int, tile_size: int) -> int:
    """An overlap in pixels as Deepness's whole percent of the tile."""
    return round(100 * overlap / tile_size)


def model_metadata(info: ModelInfo, *, overlap: int | None = None) -> dict[str, str]:
    """The metadata an exported model carries, as JSON texts by key.

    Args:
        info: the model's metadata (:func:`roadseg.model.load_model` ``.info``).
        overlap: tile overlap in pixels to suggest (default: ``roadseg
            predict``'s default).
    """
    if overlap is None:
        from roadseg.predict import DEFAULT_OVERLAP

        overlap = DEFAULT_OVERLAP
    values: dict[str, object] = {
        "model_type": DEEPNESS_MODEL_TYPE,
        "class_names": {0: CLASS_NAME},
        "tiles_size": info.tile_size,
        "tile_size": info.tile_size,
        "tiles_overlap": overlap_percent(overlap, info.tile_size),
        "seg_thresh": info.threshold,
    }
    if info.gsd is not None:
        values["resolution"] = round(info.gsd * 100, 4)
    metadata = {key: json.dumps(value) for key, value in values.items()}
    metadata[ROADSEG_KEY] = info.to_json()
    return metadata


def add_metadata(proto: onnx.ModelProto, metadata: Mapping[str, str]) -> None:
    """Set ``metadata`` as ``proto``'s ``metadata_props`` (replacing those keys)."""
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value


def read_metadata(proto: onnx.ModelProto) -> dict[str, str]:
    """``proto``'s ``metadata_props`` as a dict."""
    return {p.key: p.value for p in proto.metadata_props}


def read_model_info(proto: onnx.ModelProto) -> ModelInfo | None:
    """The :class:`~roadseg.model.ModelInfo` stored in an exported model, or None."""
    text = read_metadata(proto).get(ROADSEG_KEY)
    return ModelInfo.from_json(text) if text is not None else None
