"""The ``tf.data`` glue: a batched, prefetching pipeline over a crop generator.

TensorFlow is imported inside :func:`make_tf_dataset`, so importing
:mod:`roadseg.data` stays quick and free of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf


def make_tf_dataset(
    stream: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
    *,
    tile_size: int,
    bands: int,
    batch_size: int,
    shuffle: int = 0,
    seed: int | None = None,
) -> tf.data.Dataset:
    """A batched, prefetching ``tf.data`` pipeline over a crop generator.

    Args:
        stream: called once per pass over the data; returns a crop iterator
            (see :func:`crop_stream`).
        tile_size: crop side.
        bands: image bands.
        batch_size: crops per batch.
        shuffle: size of a shuffle buffer of crops (0: none), to mix crops
            taken from the same image into different batches.
        seed: seed of the shuffle.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_generator(
        stream,
        output_signature=(
            tf.TensorSpec((tile_size, tile_size, bands), tf.float32),
            tf.TensorSpec((tile_size, tile_size, 1), tf.float32),
        ),
    )
    if shuffle > 1:
        ds = ds.shuffle(shuffle, seed=seed)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
