#!/usr/bin/env python
"""OpenVINO INT8 (NNCF post-training quantization) against OpenVINO's default precision.

Issue 15 asks to try INT8 and keep it only if the masks agree with the float32
TensorFlow model (mean absolute probability difference <= 0.01, mask IoU >= 0.98).
This script quantizes the model with NNCF, calibrated on tiles of training data
(synthetic scenes of the training script's seeds, Dubai Tiles 1-2), then prints
one row per variant: tiles/s (model only, batches of 8, OpenVINO on every core)
and the agreement with float32 TensorFlow on held-apart tiles (synthetic seeds
6000+, the Dubai validation Tile 8 when ../shared/data is there).

Variants: OpenVINO's default (bfloat16 where the CPU has it), INT8 with every
convolution quantized, and INT8 with the first and last convolutions kept in
floating point (the usual sensitive ends).

Needs ``pip install nncf`` (not a roadseg dependency: roadseg ships no INT8 path).

Usage:
    python scripts/bench_int8.py [--model M.keras] [--calib-tiles 420] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
DUBAI = ROOT.parent / "shared" / "data" / "dubai" / "Semantic segmentation dataset"
#: The convolutions at the ends of the ResUNet (names in the ONNX graph).
ENDS = ["enc1_conv1/WithoutBiases", "head_conv/WithoutBiases"]


def raster_tiles(paths: list[Path], per: int, normalization: str, seed: int) -> np.ndarray:
    """``per`` random 224 px tiles of each raster, normalised as predict does."""
    import rasterio
    from PIL import Image

    from roadseg.preprocess import compute_normalizer

    rng = np.random.default_rng(seed)
    out = []
    with tempfile.TemporaryDirectory() as folder:  # the JPEGs, written as GeoTIFFs
        for path in paths:
            if path.suffix.lower() == ".jpg":  # Dubai: plain JPEG, stretched like a raster
                data = np.asarray(Image.open(path).convert("RGB"))
                tmp = Path(folder) / "x.tif"
                with rasterio.open(
                    tmp, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                    count=3, dtype="uint8",
                ) as dst:  # fmt: skip
                    dst.write(np.moveaxis(data, -1, 0))
                path = tmp
            with rasterio.open(path) as src:
                norm = compute_normalizer(src, (1, 2, 3), normalization)
                data = np.moveaxis(src.read([1, 2, 3]), 0, -1)
            x = norm(data)
            for _ in range(per):
                r = int(rng.integers(0, max(1, x.shape[0] - 224)))
                c = int(rng.integers(0, max(1, x.shape[1] - 224)))
                tile = x[r : r + 224, c : c + 224]
                if tile.shape[:2] == (224, 224):
                    out.append(tile)
    return np.stack(out).astype(np.float32)


def scenes(folder: Path, seeds: list[int]) -> list[Path]:
    from roadseg.synthetic import SETTINGS, SceneSpec, write_scene

    paths = []
    for seed in seeds:
        for s, setting in enumerate(sorted(SETTINGS)):
            name = f"{setting}_{seed}"
            write_scene(
                folder, 512, 512, SceneSpec(seed=seed + 100 * s, setting=setting), name=name
            )
            paths.append(folder / f"{name}.tif")
    return paths


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model file (default: the bundled model)")
    p.add_argument("--calib-tiles", type=int, default=420)
    p.add_argument("--seconds", type=float, default=8.0)
    args = p.parse_args()
    try:
        import nncf
    except ImportError:
        print("bench_int8.py needs NNCF: pip install nncf", file=sys.stderr)
        return 2
    from bench_engines import tiles_per_second

    from roadseg.engines import engine_threads
    from roadseg.engines import openvino_engine as ove
    from roadseg.export.onnx_graph import keras_to_onnx
    from roadseg.model import load_model

    model = load_model(args.model)
    norm = model.info.normalization
    with tempfile.TemporaryDirectory() as tmp:
        train_paths = scenes(Path(tmp), [1000, 1001, 1002])
        test_paths = scenes(Path(tmp), [6000])
        dubai_train = sorted(DUBAI.glob("Tile [12]/images/*.jpg"))
        dubai_val = sorted(DUBAI.glob("Tile 8/images/*.jpg"))
        per = max(1, args.calib_tiles // max(1, len(train_paths) + len(dubai_train)))
        calib = raster_tiles(train_paths + dubai_train, per, norm, seed=0)
        test = raster_tiles(test_paths + dubai_val, 6, norm, seed=1)
    print(f"calibration: {len(calib)} tiles; agreement: {len(test)} tiles", flush=True)

    def batches(x: np.ndarray) -> list[np.ndarray]:
        return [
            np.ascontiguousarray(x[i : i + 8].transpose(0, 3, 1, 2)) for i in range(0, len(x), 8)
        ]

    ref = np.concatenate(
        [model.model.predict(b.transpose(0, 2, 3, 1), verbose=0)[..., 0] for b in batches(test)]
    )
    proto = keras_to_onnx(model.model)
    threads = engine_threads()
    calib_set = nncf.Dataset([b[None] for b in calib.transpose(0, 3, 1, 2)])
    rows = []
    variants: list[tuple[str, dict[str, object] | None]] = [
        ("OpenVINO default", None),
        ("INT8, all convolutions", {}),
        ("INT8, first and last kept float", {"ignored_scope": nncf.IgnoredScope(names=ENDS)}),
    ]
    for name, kw in variants:
        started = time.perf_counter()
        ov_model = ove.read_onnx(proto)
        if kw is not None:
            ov_model = nncf.quantize(ov_model, calib_set, subset_size=len(calib), **kw)
        quantize_s = time.perf_counter() - started if kw is not None else 0.0
        compiled = ove.compile_model(ov_model, float32=False, threads=threads)

        def run(x: np.ndarray, compiled: object = compiled) -> np.ndarray:
            return ove.run_compiled(compiled, x)  # type: ignore[arg-type]

        prob = np.concatenate([run(b)[:, 0] for b in batches(test)])
        t = model.info.threshold
        a, b = ref >= t, prob >= t
        iou = float((a & b).sum() / max(1, (a | b).sum()))
        speed = tiles_per_second(run, batches(test)[0], args.seconds)
        rows.append((name, quantize_s, speed, float(np.abs(prob - ref).mean()), iou))
    base = rows[0][2]
    t = model.info.threshold
    print(f"\n{threads} threads; agreement with float32 TensorFlow at threshold {t:.3f}")
    print("| variant | quantize s | tiles/s | vs default | mean abs dp | mask IoU | kept? |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, q, speed, dp, iou in rows:
        ok = "yes" if dp <= 0.01 and iou >= 0.98 else "no (IoU < 0.98)" if dp <= 0.01 else "no"
        ratio = speed / base
        print(f"| {name} | {q:.0f} | {speed:.1f} | {ratio:.2f}x | {dp:.4f} | {iou:.4f} | {ok} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
