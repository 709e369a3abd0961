#!/usr/bin/env python
"""Benchmark the inference engines on one model: TensorFlow, onnxruntime, OpenVINO.

Prints one table row per engine and precision: tiles/s on batches of random
tiles (model only: no reading, blending or writing), and the agreement with
TensorFlow float32 on tiles of a real image (the max and mean absolute
probability difference, and the IoU of the masks at the model's threshold).
Engines that are not installed are skipped.

Usage:
    python scripts/bench_engines.py [--model M.keras] [--batch-size 8] [--tile-size 224]
        [--image sample_data/sample.tif] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]


def image_tiles(path: Path, tile: int, normalization: str, count: int) -> np.ndarray:
    """Up to ``count`` tiles of ``path``, normalised as roadseg predict does."""
    import rasterio

    from roadseg.preprocess import compute_normalizer

    with rasterio.open(path) as src:
        bands = list(range(1, min(src.count, 3) + 1))
        normalizer = compute_normalizer(src, bands, normalization)
        data = src.read(bands)
    data = np.moveaxis(data, 0, -1)
    tiles = [
        normalizer(data[y : y + tile, x : x + tile])
        for y in range(0, data.shape[0] - tile + 1, tile // 2)
        for x in range(0, data.shape[1] - tile + 1, tile // 2)
    ]
    return np.stack(tiles[:count])


def tiles_per_second(
    fn: Callable[[np.ndarray], object], batch: np.ndarray, seconds: float
) -> float:
    fn(batch)  # warm up: tracing, compilation, first allocations
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tile-size", type=int, default=224)
    parser.add_argument("--image", type=Path, default=ROOT / "sample_data" / "sample.tif")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per row")
    args = parser.parse_args()

    import tensorflow as tf

    from roadseg.engines import available_engines, engine_threads, network_fn
    from roadseg.model import load_model
    from roadseg.precision import cpu_has_bf16, with_precision

    loaded = load_model(args.model)
    info = loaded.info
    rng = np.random.default_rng(0)
    batch = rng.random((args.batch_size, args.tile_size, args.tile_size, info.bands), np.float32)
    real = image_tiles(args.image, args.tile_size, info.normalization, 16)

    def tensorflow_fn(precision: str) -> Callable[[np.ndarray], np.ndarray]:
        model = with_precision(loaded.model, precision)
        call = tf.function(lambda x: model(x, training=False))
        return lambda x: np.asarray(call(tf.constant(x)), np.float32)[..., 0]

    rows: list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = [
        ("tensorflow", "float32", tensorflow_fn("float32"))
    ]
    if cpu_has_bf16():
        rows.append(("tensorflow", "bfloat16", tensorflow_fn("bfloat16")))
    for engine in available_engines():
        for precision in ("float32", "auto") if engine == "openvino" else ("float32",):
            fn = network_fn(loaded, engine, precision)
            rows.append((engine, fn.precision, fn))

    reference = rows[0][2](real)
    truth = reference >= info.threshold
    print(
        f"model {loaded.path.name} (filters {info.filters}), batch {args.batch_size} of "
        f"{args.tile_size}x{args.tile_size}, {engine_threads()} threads; agreement with "
        f"tensorflow float32 on {len(real)} tiles of {args.image.name}"
    )
    print(
        f"{'engine':<12} {'precision':<9} {'tiles/s':>8} {'max|dp|':>9} {'mean|dp|':>9} {'IoU':>7}"
    )
    for engine, precision, fn in rows:
        rate = tiles_per_second(fn, batch, args.seconds)
        probs = fn(real)
        diff = np.abs(probs.astype(np.float64) - reference)
        mask = probs >= info.threshold
        union = np.logical_or(mask, truth).sum()
        iou = np.logical_and(mask, truth).sum() / union if union else 1.0
        print(
            f"{engine:<12} {precision:<9} {rate:>8.1f} {diff.max():>9.2e} "
            f"{diff.mean():>9.2e} {iou:>7.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
