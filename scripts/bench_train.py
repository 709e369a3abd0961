#!/usr/bin/env python
"""Training speed: the time of one epoch of 100 crops, by network width and precision.

Measures what ``roadseg train`` does per epoch: random 224 px crops streamed
from GeoTIFFs on disk through the ``tf.data`` pipeline of :mod:`roadseg.data`
(with augmentation), BCE + Dice loss, Adam with a cosine schedule, through
``model.fit``. The first steps (graph tracing) are run and excluded before
timing; validation and checkpoints are not included.

The data is a few procedural scenes from :mod:`roadseg.synthetic`, written to
a temporary folder, so the script runs the same on a fresh clone.

Usage:
    python scripts/bench_train.py
    python scripts/bench_train.py --crops 200 --filters 16,32,64,128 --precisions bfloat16
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_WIDTHS = ("64,128,256,512", "16,32,64,128")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def make_data(folder: Path, scenes: int, size: int) -> None:
    from roadseg.synthetic import SceneSpec, write_scene

    for seed in range(scenes):
        write_scene(folder, size, size, SceneSpec(seed=seed), name=f"scene{seed}")


def bench(
    data: Path, filters: tuple[int, ...], precision: str, *, crops: int, batch: int, tile: int
) -> dict[str, float]:
    import keras

    from roadseg.data import CropReader, CropSpec, crop_stream, make_tf_dataset, scan_dataset
    from roadseg.losses import bce_dice_loss
    from roadseg.model import build_resunet
    from roadseg.train import (
        CROPS_PER_IMAGE,
        PRESETS,
        SHUFFLE_BUFFER,
        make_optimizer,
        make_schedule,
    )

    report = scan_dataset(data, tile_size=tile)
    report.raise_for_errors()
    reader = CropReader(CropSpec(tile_size=tile, decoder=report.decoder))
    ds = make_tf_dataset(
        lambda: crop_stream(report.train, reader, seed=0, train=True, per_image=CROPS_PER_IMAGE),
        tile_size=tile,
        bands=3,
        batch_size=batch,
        shuffle=SHUFFLE_BUFFER,
        seed=0,
    )
    policy = POLICIES[precision]
    keras.utils.set_random_seed(0)
    model = build_resunet((tile, tile, 3), filters, dtype=None if policy == "float32" else policy)
    steps = math.ceil(crops / batch)
    preset = PRESETS["default"]
    model.compile(
        optimizer=make_optimizer(preset, make_schedule(preset, 1e-3, 2, steps), policy),
        loss=bce_dice_loss,
        jit_compile=False,
    )
    warm = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)  # tracing, excluded
    warm = time.perf_counter() - warm
    load = os.getloadavg()[0]
    start = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    per_100 = seconds * 100.0 / (steps * batch)
    keras.backend.clear_session()
    return {
        "seconds_100": per_100,
        "crops_s": steps * batch / seconds,
        "warmup": warm,
        "load": load,
    }


def data_rate(data: Path, tile: int, n: int = 200) -> float:
    """Crops per second of the data pipeline alone (one Python thread)."""
    from roadseg.data import CropReader, CropSpec, crop_stream, scan_dataset
    from roadseg.train import CROPS_PER_IMAGE

    report = scan_dataset(data, tile_size=tile)
    reader = CropReader(CropSpec(tile_size=tile, decoder=report.decoder))
    stream = crop_stream(report.train, reader, seed=1, train=True, per_image=CROPS_PER_IMAGE)
    start = time.perf_counter()
    for _ in range(n):
        next(stream)
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--crops", type=int, default=100, help="crops per timed epoch")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tile", type=int, default=224)
    parser.add_argument(
        "--filters", action="append", default=None, help="widths, repeatable (default: both)"
    )
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--scenes", type=int, default=6, help="synthetic 1024 px scenes")
    args = parser.parse_args()
    widths = [tuple(int(v) for v in f.split(",")) for f in (args.filters or DEFAULT_WIDTHS)]
    precisions = [p.strip() for p in args.precisions.split(",")]

    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        data = Path(tmp)
        make_data(data, args.scenes, 1024)
        rate = data_rate(data, args.tile)
        print(
            f"roadseg train epoch time: {args.crops} crops of {args.tile} px, batch {args.batch}, "
            f"BCE+Dice, Adam; TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"{os.cpu_count()} CPUs"
        )
        print(f"data pipeline alone: {rate:.0f} crops/s (GeoTIFF windows, augmentation)")
        print()
        print(f"| filters | precision | s / {args.crops} crops | crops/s | warm-up s | load |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for filters in widths:
            for precision in precisions:
                r = bench(
                    data, filters, precision, crops=args.crops, batch=args.batch, tile=args.tile
                )
                scaled = r["seconds_100"] * args.crops / 100.0
                print(
                    f"| {','.join(map(str, filters))} | {precision} | {scaled:.1f} | "
                    f"{r['crops_s']:.2f} | {r['warmup']:.1f} | {r['load']:.1f} |",
                    flush=True,
                )
    print()
    print("load = 1-minute load average just before the timed epoch (other work on the machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
