"""Reading training crops: :class:`CropReader` cuts random windows of an image/label
pair (preferring windows with road), normalises them like ``roadseg predict`` and
augments them; :func:`crop_stream` draws crops over a dataset and skips files that fail,
counting them in a :class:`SkipLog`.

Crops are read one image at a time, window by window where the format allows, so the
dataset is never loaded into memory.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from roadseg.data.augment import augment, resize_square
from roadseg.data.masks import colormap_lut, decode_mask, vector_mask
from roadseg.data.rasters import open_raster
from roadseg.data.types import CropSpec, Sample
from roadseg.errors import DatasetError, RoadsegError
from roadseg.geo import pixel_size_on_ground
from roadseg.preprocess import Normalizer, compute_normalizer, select_bands

# The package's logger, as before roadseg.data became a package: handlers and filters
# set on "roadseg.data" see the skipped-file warnings under the same name.
log = logging.getLogger("roadseg.data")

#: Rasters up to this many pixels are read whole once per crop to choose a
#: window; larger ones are read window by window.
WHOLE_READ_PIXELS = 4_000_000


class _WindowSource:
    """Window reads of one raster, from memory for small or non-tiled files."""

    def __init__(self, src: rasterio.io.DatasetReader, indexes: Sequence[int] | None) -> None:
        self.src = src
        self.indexes = list(indexes) if indexes is not None else None
        small = src.width * src.height <= WHOLE_READ_PIXELS
        self.whole = src.read(self.indexes) if (small or src.driver != "GTiff") else None

    def read(self, window: Window) -> np.ndarray:
        if self.whole is not None:
            r, c = int(window.row_off), int(window.col_off)
            return self.whole[:, r : r + int(window.height), c : c + int(window.width)]
        return self.src.read(self.indexes, window=window)


class CropReader:
    """Reads random crops of image/label pairs, normalised like ``roadseg predict``.

    Normalisation statistics of non-uint8 images are cached per image (a few
    numbers each), so the percentile pass runs once per file.
    """

    #: Random windows compared when a crop should contain road.
    CANDIDATES = 4

    def __init__(self, spec: CropSpec) -> None:
        self.spec = spec
        self._norms: dict[Path, tuple[tuple[int, ...], Normalizer]] = {}
        self._gsds: dict[Path, float] = {}
        self._lock = threading.Lock()

    def read(
        self, sample: Sample, rng: np.random.Generator, *, train: bool = True, n: int = 1
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``n`` random crops of ``sample``, from one opening of its files.

        PNG and JPEG files (and GeoTIFFs up to :data:`WHOLE_READ_PIXELS`) are
        decoded once for all ``n`` crops; larger GeoTIFFs are read window by window.

        Args:
            sample: the pair to read.
            rng: random generator choosing the windows (and augmentation).
            train: apply scale changes, road focus and augmentation.
            n: number of crops.

        Returns:
            ``n`` pairs ``(image, mask)``: ``(tile, tile, bands)`` float32 in
            [0, 1] and ``(tile, tile)`` uint8 0/1.

        Raises:
            RasterioError, OSError, ValueError, RoadsegError: the files cannot be read.
        """
        spec = self.spec
        tile = spec.tile_size
        crops = []
        with open_raster(sample.image) as src:
            bands, norm = self._normalizer(sample.image, src)
            small = min(src.width, src.height) < tile
            sides = []
            candidates = []
            gsd = self._gsd(sample.image, src) if spec.gsd_range is not None else None
            for _ in range(n):
                side = min(src.width, src.height, window_side(spec, rng, gsd, train))
                k = self.CANDIDATES if train and rng.random() < spec.road_focus else 1
                sides.append(side)
                candidates.append(
                    [
                        Window(
                            int(rng.integers(src.width - side + 1)),
                            int(rng.integers(src.height - side + 1)),
                            side,
                            side,
                        )
                        for _ in range(k)
                    ]
                )
            chosen = self._choose_windows(sample, src, candidates)
            image_source = _WindowSource(src, bands) if n > 1 else None
            for side, (window, mask) in zip(sides, chosen, strict=True):
                if image_source is not None:
                    raw = image_source.read(window)
                else:
                    raw = src.read(list(bands), window=window)
                image = norm(np.moveaxis(raw, 0, -1))
                if small and side != tile:  # the image is smaller than a crop: pad it
                    pad = tile - side
                    image = np.pad(image, ((0, pad), (0, pad), (0, 0)), mode="reflect")
                    mask = np.pad(mask, ((0, pad), (0, pad)), mode="reflect")
                crops.append(finish_crop(image, mask, spec, rng, train))
        return crops

    def _choose_windows(
        self,
        sample: Sample,
        src: rasterio.io.DatasetReader,
        candidates: Sequence[Sequence[Window]],
    ) -> list[tuple[Window, np.ndarray]]:
        """For each list of candidate windows, the one with the most road, and its mask."""
        chosen = []
        if sample.is_vector:
            read_mask = vector_mask(sample.label, src, self.spec.road_width_m)
            for windows in candidates:
                masks = [read_mask(w) for w in windows]
                best = int(np.argmax([int(m.sum()) for m in masks]))
                chosen.append((windows[best], masks[best]))
            return chosen
        with open_raster(sample.label) as lab:
            if (lab.width, lab.height) != (src.width, src.height):
                raise DatasetError(
                    f"{sample.label.name} is {lab.width}x{lab.height}, "
                    f"its image {src.width}x{src.height}"
                )
            lut = colormap_lut(lab)
            many = sum(len(w) for w in candidates) > 1
            source = _WindowSource(lab, None) if many else None
            for windows in candidates:
                masks = [
                    decode_mask(
                        source.read(w) if source is not None else lab.read(window=w),
                        self.spec.decoder,
                        lut,
                    )
                    for w in windows
                ]
                best = int(np.argmax([int(m.sum()) for m in masks]))
                chosen.append((windows[best], masks[best]))
        return chosen

    def _normalizer(
        self, path: Path, src: rasterio.io.DatasetReader
    ) -> tuple[tuple[int, ...], Normalizer]:
        with self._lock:
            cached = self._norms.get(path)
        if cached is None:
            bands = select_bands(src, self.spec.bands, self.spec.model_bands, path)
            cached = (bands, compute_normalizer(src, bands, self.spec.normalization))
            with self._lock:
                self._norms[path] = cached
        return cached

    def _gsd(self, path: Path, src: rasterio.io.DatasetReader) -> float:
        """The image's ground sample distance: from its georeferencing, else the
        dataset's (``spec.gsd``).

        Raises:
            DatasetError: neither is known.
        """
        with self._lock:
            cached = self._gsds.get(path)
        if cached is None:
            size = pixel_size_on_ground(src)
            if size is not None:
                cached = (size[0] + size[1]) / 2.0
            elif self.spec.gsd is not None:
                cached = float(self.spec.gsd)
            else:
                raise DatasetError(
                    f"{path.name} has no georeferencing, so its ground sample distance is "
                    "unknown; give --gsd M"
                )
            with self._lock:
                self._gsds[path] = cached
        return cached


def finish_crop(
    image: np.ndarray,
    mask: np.ndarray,
    spec: CropSpec,
    rng: np.random.Generator,
    train: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """A normalised square window and its mask as the model gets them: resized to
    the tile (bilinear; the mask nearest), augmented when training, contiguous."""
    tile = spec.tile_size
    if image.shape[0] != tile:
        image = resize_square(image, tile)
        mask = resize_square(mask, tile, nearest=True)
    if train and spec.augment is not None:
        image, mask = augment(image, mask, rng, spec.augment)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask)


def window_side(spec: CropSpec, rng: np.random.Generator, gsd: float | None, train: bool) -> int:
    """The side of the image window read for one crop (then resized to the tile).

    With ``spec.gsd_range`` and the image's ``gsd`` known, the crop shows the
    ground at a GSD drawn log-uniformly from the range (training) or at
    ``spec.val_gsd`` (validation); else, in training, at a random scale of
    ``spec.augment.scale``.
    """
    scale = 1.0
    if gsd is not None and spec.gsd_range is not None:
        lo, hi = spec.gsd_range
        target = (
            math.exp(rng.uniform(math.log(lo), math.log(hi)))
            if train
            else (spec.val_gsd or math.sqrt(lo * hi))
        )
        scale = target / gsd
    elif train and spec.augment is not None and spec.augment.scale is not None:
        lo, hi = spec.augment.scale
        scale = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return max(8, round(spec.tile_size * scale))


class SkipLog:
    """Files skipped because they failed while training, with their errors."""

    #: Consecutive failures after which the stream gives up.
    GIVE_UP = 50

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.reasons: dict[str, str] = {}
        self.fatal: DatasetError | None = None
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Number of failed reads."""
        return sum(self.counts.values())

    def record(self, sample: Sample, exc: BaseException) -> bool:
        """Count a failure; True the first time this file fails."""
        name = str(sample.image)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        with self._lock:
            first = name not in self.counts
            self.counts[name] += 1
            self.reasons.setdefault(name, reason)
        if first:
            log.warning("skipping %s: %s", sample.image.name, reason)
        return first


_READ_ERRORS = (RasterioError, OSError, ValueError, RoadsegError)


def crop_stream(
    samples: Sequence[Sample],
    reader: CropReader,
    *,
    seed: int | Sequence[int],
    train: bool,
    count: int | None = None,
    per_image: int = 1,
    skips: SkipLog | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Crops of ``samples``: forever for training, ``count`` fixed ones for validation.

    Training draws images with probability proportional to their area, takes
    ``per_image`` crops from each (shuffle downstream to mix them), and drops a
    file for the rest of the run once it fails. Validation visits the images in
    turn with windows fixed by ``seed``, spreading ``count`` crops evenly, so
    every epoch sees the same crops.

    Yields:
        ``(image (tile, tile, bands) float32, mask (tile, tile, 1) float32)``.

    Raises:
        DatasetError: if every file fails.
    """
    skips = skips if skips is not None else SkipLog()
    if not samples:
        return
    rng = np.random.default_rng(seed)
    alive = np.ones(len(samples), dtype=bool)
    areas = np.array(
        [float(s.size[0] * s.size[1]) if s.size else 1.0 for s in samples], dtype=np.float64
    )
    if not train:
        per_image = max(1, math.ceil((count or 0) / len(samples)))
    made = 0
    failures = 0
    visit = 0
    while count is None or made < count:
        if not alive.any() or failures >= SkipLog.GIVE_UP:
            first = next(iter(skips.reasons.items()), ("?", "?"))
            error = DatasetError(
                f"every file failed to read ({skips.total} failures), e.g. "
                f"{Path(first[0]).name}: {first[1]}"
            )
            skips.fatal = error
            raise error
        if train:
            weights = areas * alive
            k = int(rng.choice(len(samples), p=weights / weights.sum()))
        else:
            k = visit % len(samples)
            visit += 1
        n = per_image if count is None else min(per_image, count - made)
        try:
            crops = reader.read(samples[k], rng, train=train, n=n)
        except _READ_ERRORS as exc:
            skips.record(samples[k], exc)
            failures += 1
            if train or visit >= len(samples) and made == 0:
                alive[k] = False
            continue
        failures = 0
        for image, mask in crops:
            made += 1
            yield image, mask[..., None].astype(np.float32)
