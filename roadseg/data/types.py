"""Value types of the training data: the user's label rule, mask decoders, image/label
pairs, augmentation settings and crop specifications, with the constants they default to.

These are small frozen dataclasses with no I/O, shared by every other module of
:mod:`roadseg.data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: File extensions read as rasters (images and masks).
RASTER_EXTS = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg"})
#: File extensions read as vector road lines (SpaceNet labels).
VECTOR_EXTS = frozenset({".geojson"})
#: Road width used to rasterise SpaceNet centerlines (the width of the mask in
#: ../shared/data/spacenet, and of the usual SpaceNet 3 baselines).
DEFAULT_ROAD_WIDTH_M = 4.0
#: Colour tolerance per channel for ``--road-color`` (survives light compression).
COLOR_TOLERANCE = 8


@dataclass(frozen=True)
class LabelRule:
    """What the user said about the labels.

    Attributes:
        road_color: RGB colour of the road class in colour masks.
        road_value: pixel value of the road class in index masks.
        road_width_m: width of the road band drawn around vector centerlines.
    """

    road_color: tuple[int, int, int] | None = None
    road_value: int | None = None
    road_width_m: float = DEFAULT_ROAD_WIDTH_M

    def __post_init__(self) -> None:
        if self.road_color is not None and self.road_value is not None:
            raise ValueError("give either a road colour or a road value, not both")
        if self.road_color is not None and (
            len(self.road_color) != 3 or any(not 0 <= c <= 255 for c in self.road_color)
        ):
            raise ValueError(f"road colour must be three values 0-255, got {self.road_color}")
        if not self.road_width_m > 0:
            raise ValueError(f"road width must be positive, got {self.road_width_m} m")


@dataclass(frozen=True)
class MaskDecoder:
    """How a raster label becomes a 0/1 road mask.

    Attributes:
        kind: ``"threshold"`` (road where the largest channel >= ``threshold``),
            ``"color"`` (road where every channel is within ``tolerance`` of
            ``color``; palette masks are expanded to RGB first) or ``"value"``
            (road where band 1 equals ``value``).
        threshold: for ``"threshold"``: 1 for 0/1 masks, 128 for 0/255 masks.
        color: for ``"color"``.
        value: for ``"value"``.
        tolerance: per-channel colour tolerance.
        description: how the masks were understood, for reports.
    """

    kind: str = "threshold"
    threshold: int = 128
    color: tuple[int, int, int] | None = None
    value: int | None = None
    tolerance: int = COLOR_TOLERANCE
    description: str = "road where the mask is >= 128"


@dataclass(frozen=True)
class Sample:
    """One image and its label.

    Attributes:
        image: the image file.
        label: a raster mask, or a GeoJSON file of road lines (SpaceNet).
        split: ``"train"``, ``"val"``, ``"test"``, or ``""`` when the layout says nothing.
        group: neighbouring images share a group (e.g. ``"Tile 3"``); seeded
            splits keep a group together so validation is not a neighbour of
            training.
        size: ``(width, height)`` of the image, once its header has been read.
    """

    image: Path
    label: Path
    split: str = ""
    group: str = ""
    size: tuple[int, int] | None = None

    @property
    def is_vector(self) -> bool:
        """Whether the label is vector road lines to rasterise."""
        return self.label.suffix.lower() in VECTOR_EXTS


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training crops (0 or None turns a part off).

    The photometric parts model imagery from other sensors and atmospheres:
    colour casts, tone curves, haze, softer optics, noise, compression and
    panchromatic bands. Each is applied to a crop with its probability (the
    ``*_p`` fields) at a random strength up to its limit; the defaults switch
    them all on. Colour parts that need RGB (saturation, hue, grayscale, JPEG)
    skip crops that do not have 3 bands.

    Attributes:
        dihedral: random 90-degree rotations and flips (the 8 symmetries of a square).
        scale: crops are read at ``tile * s`` with ``s`` log-uniform in this
            range and resized to ``tile`` (small scale changes).
        brightness: largest brightness shift, in units of the [0, 1] range.
        contrast: largest relative contrast change.
        hue: largest hue rotation, in turns (0.05 = 18 degrees).
        channel_gain: largest relative gain change of each band on its own
            (colour casts, white balance): gains uniform in ``1 -/+ channel_gain``.
        channel_offset: largest offset of each band on its own, in units of
            the [0, 1] range.
        colour_cast_p: probability of the per-band gains and offsets.
        saturation: largest relative saturation change (1 +/- this; RGB only).
        saturation_p: probability of the saturation change.
        gamma: range of the gamma applied (``image ** g``, ``g`` log-uniform).
        gamma_p: probability of the gamma.
        haze: largest weight ``a`` of the haze veil: ``image * (1 - a) + a * veil``
            with a bright grey-blue ``veil``.
        haze_p: probability of haze.
        grayscale_p: probability of replacing RGB by its luminance in all three
            bands (panchromatic sensors fed as ``--bands 1,1,1``).
        blur: range of the Gaussian blur's sigma, in pixels.
        blur_p: probability of blur.
        noise: largest standard deviation of Gaussian sensor noise.
        noise_p: probability of noise (half the time with a different
            strength in each band).
        jpeg: range of JPEG quality of a compression round trip (RGB only).
        jpeg_p: probability of JPEG compression.
    """

    dihedral: bool = True
    scale: tuple[float, float] | None = (0.8, 1.25)
    brightness: float = 0.08
    contrast: float = 0.2
    hue: float = 0.04
    channel_gain: float = 0.12
    channel_offset: float = 0.04
    colour_cast_p: float = 0.5
    saturation: float = 0.35
    saturation_p: float = 0.5
    gamma: tuple[float, float] | None = (0.6, 1.6)
    gamma_p: float = 0.4
    haze: float = 0.35
    haze_p: float = 0.25
    grayscale_p: float = 0.1
    blur: tuple[float, float] | None = (0.3, 1.5)
    blur_p: float = 0.25
    noise: float = 0.03
    noise_p: float = 0.3
    jpeg: tuple[int, int] | None = (30, 90)
    jpeg_p: float = 0.25


@dataclass(frozen=True)
class CropSpec:
    """How crops are cut and prepared.

    Attributes:
        tile_size: side of the crops fed to the model.
        decoder: how raster masks become 0/1 road masks.
        road_width_m: width of the road band around vector centerlines.
        bands: image bands (1-based) that feed the model, or None for the
            usual choice (see :func:`roadseg.preprocess.select_bands`).
        model_bands: number of bands the model takes.
        augment: augmentation, or None for none.
        road_focus: share of crops chosen, from a few random candidates, for
            having the most road (thin roads are otherwise seen rarely).
        normalization: ``auto`` or ``percentile`` (see
            :func:`roadseg.preprocess.compute_normalizer`), as the model will
            be fed by ``roadseg predict``.
        gsd: ground sample distance of images without georeferencing.
        gsd_range: with it, each training crop is read at a GSD drawn
            log-uniformly from this range (instead of ``augment.scale``).
        val_gsd: the GSD validation crops are read at (with ``gsd_range``).
    """

    tile_size: int = 224
    decoder: MaskDecoder = field(default_factory=MaskDecoder)
    road_width_m: float = DEFAULT_ROAD_WIDTH_M
    bands: tuple[int, ...] | None = None
    model_bands: int = 3
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    road_focus: float = 0.5
    normalization: str = "auto"
    gsd: float | None = None
    gsd_range: tuple[float, float] | None = None
    val_gsd: float | None = None
