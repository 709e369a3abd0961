"""Training crops of rasters labelled by a road layer: :class:`RoadCropReader` reads
windows that lie inside one block of the sample's split and inside the trusted
area (:mod:`roadseg.data.aoi_split`), burns the roads into each window on the fly,
and avoids windows holding nodata pixels, so nodata never counts as "not road".
Normalisation, scale changes and augmentation are :class:`CropReader`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from roadseg.data.aoi_split import BlockCrops, pick_window
from roadseg.data.crops import CropReader, finish_crop, window_side
from roadseg.data.masks import shapes_mask
from roadseg.data.rasters import open_raster
from roadseg.data.road_data import RoadDataset
from roadseg.data.types import CropSpec, Sample
from roadseg.errors import DatasetError


class RoadCropReader(CropReader):
    """Reads crops of the rasters of a :class:`RoadDataset`, with burned masks.

    ``sample.split`` says which blocks a crop comes from; a raster appears once
    per split.
    """

    #: Windows tried for one crop before a raster is given up as all nodata.
    NODATA_TRIES = 20

    def __init__(self, spec: CropSpec, dataset: RoadDataset) -> None:
        super().__init__(spec)
        self.dataset = dataset
        self._masks: dict[Path, Callable[[Window], np.ndarray]] = {}

    def _mask_reader(self, key: Path) -> Callable[[Window], np.ndarray]:
        with self._lock:
            reader = self._masks.get(key)
        if reader is None:
            reader = shapes_mask(self.dataset.scenes[key].shapes)
            with self._lock:
                self._masks[key] = reader
        return reader

    def _side(self, rng: np.random.Generator, gsd: float | None, train: bool) -> int:
        """The side of the window read for one crop (resized to the tile)."""
        return window_side(self.spec, rng, gsd, train)

    def read(
        self, sample: Sample, rng: np.random.Generator, *, train: bool = True, n: int = 1
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``n`` crops of ``sample``'s raster from the blocks of ``sample.split``.

        Raises:
            DatasetError: the raster has no block of that split, or every window
                tried holds nodata.
            RasterioError, OSError: the raster cannot be read.
        """
        spec, ds = self.spec, self.dataset
        scene = ds.scenes[sample.image]
        blocks = [b for b in scene.blocks if b.split == sample.split]
        if not blocks:
            raise DatasetError(f"{sample.image.name} has no {sample.split} block")
        read_mask = self._mask_reader(sample.image)
        crops = []
        with open_raster(sample.image) as src:
            bands, norm = self._normalizer(sample.image, src)
            check_nodata = src.nodata is not None or any(
                MaskFlags.all_valid not in flags for flags in src.mask_flag_enums
            )
            gsd = self._gsd(sample.image, src) if spec.gsd_range is not None else None
            for _ in range(n):
                side = self._side(rng, gsd, train)
                window, mask, raw = self._window(
                    src, blocks, scene.area, read_mask, rng, side, train, bands, check_nodata
                )
                image = norm(np.moveaxis(raw, 0, -1))
                crops.append(finish_crop(image, mask, spec, rng, train))
        return crops

    def _window(
        self,
        src: rasterio.io.DatasetReader,
        blocks: Sequence[BlockCrops],
        area: Any,
        read_mask: Callable[[Window], np.ndarray],
        rng: np.random.Generator,
        side: int,
        train: bool,
        bands: tuple[int, ...],
        check_nodata: bool,
    ) -> tuple[Window, np.ndarray, np.ndarray]:
        """A window (with the most road of a few candidates, for road focus) free of
        nodata, its mask and its pixels."""
        tile, stride = self.spec.tile_size, self.dataset.stride
        for _ in range(self.NODATA_TRIES):
            k = self.CANDIDATES if train and rng.random() < self.spec.road_focus else 1
            windows = [
                pick_window(blocks, area, tile, side, stride, rng, jitter=train) for _ in range(k)
            ]
            masks = [read_mask(w) for w in windows]
            best = int(np.argmax([int(m.sum()) for m in masks]))
            window = windows[best]
            raw = src.read(list(bands), window=window)
            if check_nodata:
                valid = src.read_masks(list(bands), window=window)
                if not valid.all():
                    continue
            return window, masks[best], raw
        raise DatasetError(
            f"{Path(src.name).name}: {self.NODATA_TRIES} windows in a row held "
            "nodata pixels; limit the area to valid pixels with --aoi"
        )
