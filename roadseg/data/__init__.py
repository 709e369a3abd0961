"""Training data: finding image/label pairs, and streaming augmented crops.

:func:`scan_dataset` recognises, without flags, the layouts people download:

* **DeepGlobe Road**: ``<id>_sat.jpg`` beside ``<id>_mask.png`` (RGB masks, 0/255).
  Folders holding only images (DeepGlobe's unlabelled ``valid/`` and ``test/``)
  are skipped with a note.
* **Massachusetts Roads**: ``sat/*.tiff`` + ``map/*.tif`` (optionally under
  ``train/``, ``valid/``, ``test/``), or the common mirror layout ``train/``,
  ``train_labels/``, ``val/``, ``val_labels/``, ``test/``, ``test_labels/``.
* **SpaceNet 3 roads**: image chips (``PS-RGB`` preferred) and ``geojson_roads``
  LineStrings matched on ``AOI_<k>`` and ``_img<N>``; lines are buffered to a
  road width in metres and rasterised on the fly for each crop.
* **Plain pairs**: ``images/`` + ``masks/`` (or ``labels/``, ``gt/``) folders with
  matching file stems (a ``_mask``/``_label``/``_gt`` suffix on the mask is
  allowed), GeoTIFF, PNG or JPEG, at any depth: ``train/images`` + ``train/masks``,
  ``images/train`` + ``masks/train``, or nested ``Tile 1/images`` + ``Tile 1/masks``.
* **Side-by-side pairs**: ``<name>.tif`` beside ``<name>_mask.tif`` (or
  ``_label``/``_gt``), as :func:`roadseg.synthetic.write_scene` writes them.

Masks may be 0/255 or 0/1, one band or RGB, or multi-class colour or index
masks where one class is road (:class:`LabelRule`). The scan reads file headers
and a decimated sample of a few masks, never whole images.

Normalisation equals :mod:`roadseg.predict`'s, image by image: uint8 imagery is
divided by 255; any other dtype gets a per-band 2-98 percentile stretch computed
over the whole image (decimated), exactly what ``roadseg predict`` computes for
that image. A model trained here therefore stores ``normalization="auto"``.

The ``tf.data`` pipeline (:func:`make_tf_dataset`) pulls crops from a Python
generator that opens one image per crop and reads only the window it needs
(GeoTIFF windowed reads; PNG and JPEG are decoded whole, one file at a time), so
the dataset is never loaded into memory. A file that fails mid-training is
skipped with a warning and counted in a :class:`SkipLog`.

The package, by role (each module's docstring says more):

* :mod:`~roadseg.data.types`: value types (:class:`LabelRule`, :class:`MaskDecoder`,
  :class:`Sample`, :class:`AugmentConfig`, :class:`CropSpec`).
* :mod:`~roadseg.data.files`: walking a dataset folder, naming its files in messages.
* :mod:`~roadseg.data.layouts`: one finder per layout, consulted in the order of
  :data:`~roadseg.data.layouts.LAYOUTS`.
* :mod:`~roadseg.data.discovery`: :func:`discover_pairs`, :func:`split_samples`.
* :mod:`~roadseg.data.rasters`: opening rasters, their pixel size on the ground.
* :mod:`~roadseg.data.masks`: labels to 0/1 road masks, :func:`infer_decoder`.
* :mod:`~roadseg.data.scanning`: :func:`scan_dataset` and its :class:`DatasetReport`.
* :mod:`~roadseg.data.augment`: :func:`augment`, :func:`resize_square`.
* :mod:`~roadseg.data.crops`: :class:`CropReader`, :func:`crop_stream`, :class:`SkipLog`.
* :mod:`~roadseg.data.tfdata`: :func:`make_tf_dataset` (imports TensorFlow when called).
"""

from roadseg.data.augment import augment, resize_square
from roadseg.data.crops import WHOLE_READ_PIXELS, CropReader, SkipLog, crop_stream
from roadseg.data.discovery import DEFAULT_VAL_FRACTION, discover_pairs, split_samples
from roadseg.data.files import MAX_LISTED, SPLIT_NAMES
from roadseg.data.layouts import (
    FLAT_MASK_SUFFIXES,
    IMAGE_DIR_NAMES,
    LAYOUT_HELP,
    LAYOUT_NAMES,
    MASK_DIR_NAMES,
    MASK_SUFFIXES,
)
from roadseg.data.masks import (
    MASK_SAMPLE_SIDE,
    MASK_SAMPLES,
    colormap_lut,
    decode_mask,
    infer_decoder,
    vector_mask,
)
from roadseg.data.rasters import open_raster, pixel_size_m
from roadseg.data.scanning import DatasetReport, scan_dataset
from roadseg.data.tfdata import make_tf_dataset
from roadseg.data.types import (
    COLOR_TOLERANCE,
    DEFAULT_ROAD_WIDTH_M,
    RASTER_EXTS,
    VECTOR_EXTS,
    AugmentConfig,
    CropSpec,
    LabelRule,
    MaskDecoder,
    Sample,
)

__all__ = [
    "COLOR_TOLERANCE",
    "DEFAULT_ROAD_WIDTH_M",
    "DEFAULT_VAL_FRACTION",
    "FLAT_MASK_SUFFIXES",
    "IMAGE_DIR_NAMES",
    "LAYOUT_HELP",
    "LAYOUT_NAMES",
    "MASK_DIR_NAMES",
    "MASK_SAMPLES",
    "MASK_SAMPLE_SIDE",
    "MASK_SUFFIXES",
    "MAX_LISTED",
    "RASTER_EXTS",
    "SPLIT_NAMES",
    "VECTOR_EXTS",
    "WHOLE_READ_PIXELS",
    "AugmentConfig",
    "CropReader",
    "CropSpec",
    "DatasetReport",
    "LabelRule",
    "MaskDecoder",
    "Sample",
    "SkipLog",
    "augment",
    "colormap_lut",
    "crop_stream",
    "decode_mask",
    "discover_pairs",
    "infer_decoder",
    "make_tf_dataset",
    "open_raster",
    "pixel_size_m",
    "resize_square",
    "scan_dataset",
    "split_samples",
    "vector_mask",
]
