#!/usr/bin/env python
"""Issue-5 benchmark: predict at the hardware's limit, measured side by side.

One table, one row per measurement, on a synthetic scene (roadseg.synthetic):

1. precision   model-only tiles/s in float32 and bfloat16 at a given width, and the
               bfloat16/float32 agreement (mean |dp|, mask IoU) on the scene
2. pipeline    ``roadseg predict`` wall time vs the model-only time for the same tiles
3. memory      peak RSS of ``roadseg predict`` (wait4 on the child) at two sizes
4. windows     tile 224 vs 512 vs 1024 (same 32 px overlap): tiles/s-equivalent speed
               and mask IoU against the 224 output
5. baseline    the in-memory "smooth tiled predictions" way (scripts/smooth_tiled_baseline.py)
               against roadseg predict: (a) equal settings, (b) each as people run it
6. tta         cost of --tta flip / d4 and their F1 against the scene's true mask

Every roadseg run is a child process (``python -m roadseg predict``) so its
memory is its own. Nothing here is a test: it prints what it measured.

Usage:
    python scripts/bench_predict_targets.py --size 8192 --big 16384 [--model M.keras]
        [--sections 1,2,3,4,5,6] [--width-model full|bundled] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import rasterio  # noqa: E402

ROWS: list[tuple[str, str, str]] = []


def row(section: str, what: str, result: str) -> None:
    ROWS.append((section, what, result))
    print(f"  [{section}] {what}: {result}", flush=True)


def child(cmd: list[str]) -> tuple[float, float]:
    """Run a command; (wall seconds, peak RSS MB) of that process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss / 1024.0


def predict_cmd(src: Path, out: Path, model: str | None, *extra: str) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "roadseg",
        "predict",
        str(src),
        "-o",
        str(out),
        "--overwrite",
        "--quiet",
    ]
    if model:
        cmd += ["--model", model]
    return cmd + list(extra)


def read_prob(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        data = ds.read(1).astype(np.float32)
        if ds.dtypes[0] == "uint8":
            data *= ds.scales[0]
    return data


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = np.logical_and(pred, truth).sum()
    denom = pred.sum() + truth.sum()
    return float(2 * tp / denom) if denom else 1.0


def model_only(model_path: str | None, precision: str, tiles: int, tile: int, batch: int) -> float:
    """Seconds for ``tiles`` tiles through the network alone, in a child process."""
    code = f"""
import os, time, numpy as np
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from roadseg.model import load_model
from roadseg.precision import with_precision
from roadseg.predict import make_infer_fn
m = load_model({model_path!r})
f = make_infer_fn(with_precision(m.model, {precision!r}), {tile}, m.info.bands)
x = np.random.default_rng(0).random(({batch}, {tile}, {tile}, m.info.bands), dtype=np.float32)
f(x); f(x[:1])
t = time.perf_counter(); done = 0
while done < {tiles}:
    n = min({batch}, {tiles} - done); f(x[:n]); done += n
print(time.perf_counter() - t)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def pipeline_only(src: Path, out: Path, model: str | None, batch: int) -> tuple[float, float]:
    """``predict_raster`` timed inside a child, after Python, TensorFlow and the
    model have loaded: (its wall seconds, seconds spent inside model calls)."""
    code = f"""
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from roadseg.model import load_model
from roadseg.predict import PredictOptions, predict_raster
m = load_model({model!r})
opts = PredictOptions(batch_size={batch}, precision="auto", overwrite=True)
r = predict_raster({str(src)!r}, {str(out)!r}, m, opts)
print(r.seconds, r.model_seconds)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, in_model = res.stdout.strip().splitlines()[-1].split()
    return float(wall), float(in_model)


def n_tiles(size: int, tile: int, overlap: int) -> int:
    from roadseg.tiling import tile_grid

    return len(tile_grid(size, size, tile, overlap))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--big", type=int, default=16384, help="second size for the memory growth")
    p.add_argument(
        "--small", type=int, default=2048, help="scene size for agreement / TTA / baseline (b)"
    )
    p.add_argument("--model", default=None, help="model file (default: the bundled model)")
    p.add_argument(
        "--width-model",
        default="full",
        choices=["full", "bundled"],
        help="network for the precision speed row: the seed width (64..512) or the bundled one",
    )
    p.add_argument("--sections", default="1,2,3,4,5,6")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="repeat sections 2 and 3 (each time: whole predict, then model-only and "
        "predict_raster back to back, then the big size), for timings on a shared machine",
    )
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    sections = {int(s) for s in args.sections.split(",")}

    from roadseg.model import ModelInfo, build_resunet, load_model, save_model
    from roadseg.synthetic import SceneSpec, write_scene

    model = args.model
    info = load_model(model).info
    tmp = tempfile.TemporaryDirectory()
    work = args.workdir or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)

    def scene(size: int) -> tuple[Path, Path]:
        name = f"scene_{size}"
        if not (work / f"{name}.tif").exists():
            write_scene(work, size, size, SceneSpec(seed=size + 1), name=name)
        return work / f"{name}.tif", work / f"{name}_mask.tif"

    small, small_mask = scene(args.small)
    with rasterio.open(small_mask) as ds:
        truth = ds.read(1) > 0
    th = info.threshold

    if 1 in sections:
        speed_model = model
        if args.width_model == "full":
            full = work / "full_width.keras"
            if not full.exists():
                save_model(
                    build_resunet((None, None, 3)),
                    full,
                    ModelInfo(provenance={"note": "untrained, for speed only"}),
                )
            speed_model = str(full)
        tiles = 96
        t32 = model_only(speed_model, "float32", tiles, 224, args.batch_size)
        tbf = model_only(speed_model, "bfloat16", tiles, 224, args.batch_size)
        label = "seed width 64-512" if args.width_model == "full" else "bundled width"
        row("1", f"float32 model-only ({label})", f"{tiles / t32:.2f} tiles/s")
        row(
            "1",
            f"bfloat16 model-only ({label})",
            f"{tiles / tbf:.2f} tiles/s, {t32 / tbf:.2f}x float32",
        )
        out32, outbf = work / "p32.tif", work / "pbf.tif"
        child(predict_cmd(small, out32, model, "--precision", "float32", "--float"))
        child(predict_cmd(small, outbf, model, "--precision", "bfloat16", "--float"))
        a, b = read_prob(out32), read_prob(outbf)
        row(
            "1",
            f"bfloat16 vs float32 agreement ({args.small}^2 scene)",
            f"mean |dp| {np.abs(a - b).mean():.4f}, mask IoU {iou(a >= th, b >= th):.4f}",
        )

    for rep in range(args.repeat if (2 in sections or 3 in sections) else 0):
        run = f" (run {rep + 1})" if args.repeat > 1 else ""
        src, _ = scene(args.size)
        wall, rss = child(
            predict_cmd(src, work / "p.tif", model, "--batch-size", str(args.batch_size))
        )
        tiles = n_tiles(args.size, info.tile_size, 32)
        from roadseg.precision import resolve_precision

        prec = resolve_precision("auto")
        mo = model_only(model, prec, tiles, info.tile_size, args.batch_size)
        if 2 in sections:
            row(
                "2",
                f"predict {args.size}^2 ({tiles} tiles, {prec}){run}",
                f"{wall:.1f} s, {tiles / wall:.1f} tiles/s, {args.size**2 / wall / 1e6:.2f} Mpix/s",
            )
            row(
                "2",
                f"model-only, same tiles{run}",
                f"{mo:.1f} s; whole predict process/model = {wall / mo:.2f}x",
            )
            inside, in_model = pipeline_only(src, work / "p_in.tif", model, args.batch_size)
            row(
                "2",
                "predict_raster after start-up (model loaded; tracing, COG, overviews)" + run,
                f"{inside:.1f} s ({in_model:.1f} s inside model calls); "
                f"pipeline/model-only = {inside / mo:.2f}x",
            )
        if 3 in sections:
            row("3", f"peak RSS {args.size}^2{run}", f"{rss:.0f} MB")
            if args.big:
                big, _ = scene(args.big)
                wall_b, rss_b = child(
                    predict_cmd(big, work / "pb.tif", model, "--batch-size", str(args.batch_size))
                )
                row(
                    "3",
                    f"peak RSS {args.big}^2{run}",
                    f"{rss_b:.0f} MB ({(rss_b / rss - 1) * 100:+.1f} %), {wall_b:.0f} s",
                )

    if 4 in sections:
        src, _ = scene(args.size if args.size <= 4096 else 4096)
        size = 4096 if args.size > 4096 else args.size
        ref = None
        for tile in (224, 512, 1024):
            out = work / f"pw{tile}.tif"
            wall, _ = child(
                predict_cmd(
                    src,
                    out,
                    model,
                    "--tile-size",
                    str(tile),
                    "--batch-size",
                    str(max(1, args.batch_size * 224 * 224 // (tile * tile))),
                )
            )
            prob = read_prob(out)
            if ref is None:
                ref, ref_wall = prob >= th, wall
                row("4", f"tile 224 on {size}^2", f"{wall:.1f} s")
            else:
                row(
                    "4",
                    f"tile {tile} on {size}^2",
                    f"{wall:.1f} s ({ref_wall / wall:.2f}x), "
                    f"mask IoU vs 224: {iou(ref, prob >= th):.4f}",
                )

    if 5 in sections:
        base_code = """
import os, sys, time, json, numpy as np, rasterio
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {scripts!r})
from smooth_tiled_baseline import predict_in_memory
from roadseg.model import load_model
from roadseg.precision import with_precision
from roadseg.predict import make_infer_fn
m = load_model({model!r})
f = make_infer_fn(with_precision(m.model, {precision!r}), 224, 3)
with rasterio.open({src!r}) as ds:
    img = np.moveaxis(ds.read(), 0, -1).astype(np.float32) / 255.0
p = predict_in_memory(img, f, 224, {overlap}, {batch}, {tta})
np.save({out!r}, (p >= {th}))
"""
        scripts = str(Path(__file__).resolve().parent)
        from roadseg.precision import resolve_precision

        prec = resolve_precision("auto")
        cases = [
            ("a", args.size, prec, 32, False, ["--overlap", "32"]),
            ("b", args.small, "float32", 112, True, []),
        ]
        for tag, size, precision, overlap, tta, extra in cases:
            src, _ = scene(size)
            out_npy = work / f"base_{tag}.npy"
            code = base_code.format(
                scripts=scripts,
                model=model,
                precision=precision,
                src=str(src),
                overlap=overlap,
                batch=args.batch_size,
                tta=tta,
                out=str(out_npy),
                th=th,
            )
            wall_n, rss_n = child([sys.executable, "-c", code])
            out = work / f"rs_{tag}.tif"
            wall_r, rss_r = child(predict_cmd(src, out, model, *extra))
            agree = iou(np.load(out_npy), read_prob(out) >= th)
            what = (
                f"(a) equal: overlap 32, {precision}, no TTA"
                if tag == "a"
                else "(b) as run: notebook float32/50%/D4 vs roadseg defaults"
            )
            row(
                "5",
                f"{what}, {size}^2",
                f"in-memory {wall_n:.0f} s / {rss_n:.0f} MB; "
                f"roadseg {wall_r:.0f} s / {rss_r:.0f} MB; speed-up {wall_n / wall_r:.1f}x, "
                f"memory {rss_n / rss_r:.1f}x less, mask IoU {agree:.3f}",
            )

    if 6 in sections:
        base = None
        for tta in ("none", "flip", "d4"):
            out = work / f"tta_{tta}.tif"
            wall, _ = child(predict_cmd(small, out, model, "--tta", tta))
            score = f1(read_prob(out) >= th, truth)
            if base is None:
                base = wall
            row(
                "6",
                f"--tta {tta} on {args.small}^2",
                f"{wall:.1f} s ({wall / base:.1f}x), F1 vs truth {score:.4f}",
            )

    print()
    print(
        f"machine: {os.cpu_count()} cpus; model: {model or 'bundled'} "
        f"(filters {list(info.filters)})"
    )
    print("| target | measurement | result |")
    print("|---|---|---|")
    for section, what, result in ROWS:
        print(f"| {section} | {what} | {result} |")
    (work / "bench_results.json").write_text(json.dumps(ROWS, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
