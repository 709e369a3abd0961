"""The Deep Residual U-Net and roadseg model files.

``build_resunet`` reproduces the architecture of Zhang, Liu & Wang, "Road
Extraction by Deep Residual U-Net" (IEEE GRSL 2018) at its default width
(8,227,393 parameters for a 224x224x3 input). It uses the Keras 3 API only,
so it runs under the TensorFlow, JAX and PyTorch backends.

A roadseg model file is a normal ``.keras`` archive with one extra member,
``roadseg.json``, holding what is needed to use the model right: input
bands, normalisation, training tile size, ground sample distance, default
threshold and provenance. Keras ignores the extra member, so the file still
loads with plain ``keras.saving.load_model``; and a plain Keras-saved ResUNet
without it loads here too, with stated defaults and a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roadseg.errors import ModelError
from roadseg.tiling import is_tile_size

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

METADATA_MEMBER = "roadseg.json"
DEFAULT_FILTERS = (64, 128, 256, 512)
BUNDLED_MODEL = "roadseg_default.keras"


@dataclass(frozen=True)
class ModelInfo:
    """What a model needs its input to look like, and where it came from.

    Attributes:
        bands: number of input bands the network takes.
        normalization: ``"auto"`` means uint8 data is divided by 255 and other
            dtypes get a per-band 2-98 percentile stretch over the whole raster
            (the same rule training used).
        tile_size: the patch size the model was trained on.
        gsd: ground sample distance of the training data in metres, if known.
        threshold: default probability threshold for a binary mask.
        filters: encoder widths, for the record.
        provenance: free-form description (training data, metrics, version).
    """

    bands: int = 3
    normalization: str = "auto"
    tile_size: int = 224
    gsd: float | None = None
    threshold: float = 0.5
    filters: tuple[int, ...] = DEFAULT_FILTERS
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["filters"] = list(self.filters)
        data["format"] = "roadseg-model/1"
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "filters" in kwargs:
            kwargs["filters"] = tuple(int(f) for f in kwargs["filters"])
        return cls(**kwargs)


@dataclass(frozen=True)
class LoadedModel:
    """A loaded Keras model with its metadata, file path and SHA-256."""

    model: keras.Model
    info: ModelInfo
    path: Path
    sha256: str


def build_resunet(
    input_shape: Sequence[int | None] = (224, 224, 3),
    filters: Sequence[int] = DEFAULT_FILTERS,
    *,
    name: str = "resunet",
    dtype: Any = None,
    folded: bool = False,
) -> keras.Model:
    """Build a Deep Residual U-Net.

    Encoder: a stem (conv3x3-BN-ReLU-conv3x3, plus a 1x1 conv shortcut) and two
    pre-activation residual blocks with stride 2; a stride-2 bridge; decoder:
    three steps of 2x upsampling, concatenation with the skip, residual block;
    a 1x1 conv with sigmoid gives the road probability.

    Args:
        input_shape: ``(height, width, bands)``; height and width may be
            ``None`` (fully convolutional) or multiples of 8.
        filters: four widths, encoder levels 1-3 and the bridge.
        name: model name.
        dtype: Keras dtype policy name (e.g. ``"mixed_bfloat16"``) or None.
        folded: leave out the batch norms that directly follow a convolution
            (``enc1_mid_bn`` and each block's ``pre2_bn``), for an inference
            copy whose convolutions carry them (:mod:`roadseg.fused`).

    Returns:
        An uncompiled ``keras.Model`` mapping ``(N, H, W, bands)`` to
        ``(N, H, W, 1)`` probabilities.

    Raises:
        ValueError: if the shape or widths are invalid.
    """
    import keras
    from keras import layers

    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, bands), got {tuple(input_shape)}")
    height, width, bands = input_shape
    for size in (height, width):
        if size is not None and not is_tile_size(size):
            raise ValueError(f"input height and width must be multiples of 8, got {size}")
    if bands is None or bands < 1:
        raise ValueError(f"input bands must be a positive number, got {bands}")
    filters = tuple(int(f) for f in filters)
    if len(filters) != 4 or any(f < 1 for f in filters):
        raise ValueError(f"filters must be four positive widths, got {filters}")

    kw: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}

    def conv(x: Any, width_: int, size: int, stride: int, lname: str) -> Any:
        return layers.Conv2D(width_, size, strides=stride, padding="same", name=lname, **kw)(x)

    def bn_relu(x: Any, prefix: str, after_conv: bool = False) -> Any:
        if not (folded and after_conv):
            x = layers.BatchNormalization(name=f"{prefix}_bn", **kw)(x)
        return layers.Activation("relu", name=f"{prefix}_relu", **kw)(x)

    def residual_block(x: Any, width_: int, stride: int, prefix: str) -> Any:
        y = bn_relu(x, f"{prefix}_pre1")
        y = conv(y, width_, 3, stride, f"{prefix}_conv1")
        y = bn_relu(y, f"{prefix}_pre2", after_conv=True)
        y = conv(y, width_, 3, 1, f"{prefix}_conv2")
        shortcut = conv(x, width_, 1, stride, f"{prefix}_shortcut")
        return layers.Add(name=f"{prefix}_add", **kw)([y, shortcut])

    inputs = keras.Input(shape=(height, width, bands), name="image")
    # Stem (encoder level 1): no pre-activation on the raw image.
    x = conv(inputs, filters[0], 3, 1, "enc1_conv1")
    x = bn_relu(x, "enc1_mid", after_conv=True)
    x = conv(x, filters[0], 3, 1, "enc1_conv2")
    shortcut = conv(inputs, filters[0], 1, 1, "enc1_shortcut")
    enc1 = layers.Add(name="enc1_add", **kw)([x, shortcut])
    enc2 = residual_block(enc1, filters[1], 2, "enc2")
    enc3 = residual_block(enc2, filters[2], 2, "enc3")
    bridge = residual_block(enc3, filters[3], 2, "bridge")

    x = bridge
    for level, skip, width_ in (
        (1, enc3, filters[2]),
        (2, enc2, filters[1]),
        (3, enc1, filters[0]),
    ):
        x = layers.UpSampling2D(2, name=f"dec{level}_up", **kw)(x)
        x = layers.Concatenate(name=f"dec{level}_concat", **kw)([x, skip])
        x = residual_block(x, width_, 1, f"dec{level}")

    # The sigmoid runs in float32 even under mixed precision: probabilities
    # near 0 and 1 need the precision.
    x = layers.Conv2D(1, 1, padding="same", name="head_conv", **kw)(x)
    outputs = layers.Activation("sigmoid", dtype="float32", name="road_probability")(x)
    return keras.Model(inputs, outputs, name=name)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: keras.Model, path: str | os.PathLike[str], info: ModelInfo) -> Path:
    """Save ``model`` with its metadata as one ``.keras`` file, atomically.

    Raises:
        OutputError: if the folder does not exist or the file cannot be written.
    """
    from roadseg.errors import OutputError

    path = Path(path)
    if path.suffix != ".keras":
        raise OutputError(f"{path}: a model file must end in .keras")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent} does not exist; create the folder first")
    from roadseg.raster_io import atomic_output  # rasterio only when a model is saved

    with atomic_output(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(METADATA_MEMBER, info.to_json())
    return path


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo | None:
    """The metadata stored in a model file, or None for a plain Keras file.

    Raises:
        ModelError: if the file is missing or not a ``.keras`` archive.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; check the --model path")
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path} is not a Keras model file (.keras archive); "
            "pass a model saved by roadseg train or by Keras"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            if METADATA_MEMBER not in zf.namelist():
                return None
            return ModelInfo.from_json(zf.read(METADATA_MEMBER).decode("utf-8"))
    except (zipfile.BadZipFile, ValueError, TypeError, KeyError) as exc:
        raise ModelError(
            f"{path}: unreadable roadseg metadata ({exc}); re-save the model"
        ) from None


def bundled_model_path() -> Path:
    """Path of the model that ships inside the package."""
    return Path(str(resources.files("roadseg") / "models" / BUNDLED_MODEL))


def load_model(path: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load a model file (the bundled model when ``path`` is None).

    A plain Keras ResUNet without roadseg metadata loads with defaults derived
    from its input shape, and a warning.

    Raises:
        ModelError: if the file is missing, not a Keras model, or not a model
            that maps ``(N, H, W, C)`` images to one probability band.
    """
    path = bundled_model_path() if path is None else Path(path)
    info = read_model_info(path)
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for bad archives
        raise ModelError(f"{path} could not be loaded as a Keras model: {exc}") from None
    shape_in = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    shape_out = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if (
        shape_in is None
        or len(shape_in) != 4
        or shape_out is None
        or len(shape_out) != 4
        or shape_out[-1] != 1
    ):
        raise ModelError(
            f"{path} is not a segmentation model: it maps {model.input_shape} to "
            f"{model.output_shape}, roadseg needs (N, H, W, bands) -> (N, H, W, 1)"
        )
    if info is None:
        tile = shape_in[1] if isinstance(shape_in[1], int) else 224
        info = ModelInfo(bands=int(shape_in[3]), tile_size=int(tile), filters=())
        log.warning(
            "%s has no roadseg metadata; assuming %d bands, tile size %d, threshold 0.5, "
            "uint8 /255 or percentile-stretch normalisation",
            path.name,
            info.bands,
            info.tile_size,
        )
    elif shape_in[3] != info.bands:
        raise ModelError(
            f"{path}: metadata says {info.bands} bands but the network takes {shape_in[3]}"
        )
    return LoadedModel(model=model, info=info, path=path, sha256=file_sha256(path))
