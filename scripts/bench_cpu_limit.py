#!/usr/bin/env python
"""Predict at this CPU's limit: the machine's own rate, the model's share of it,
whole runs against an earlier revision, memory, and engine agreement, in one run.

Sections (``--sections``, default all):

1. ``limit``    the machine's bfloat16 and float32 rates: a 4096^2 matrix product
                and a 3x3 convolution 64 -> 64 channels on 8 tiles of 224^2
                (TensorFlow, this process's threads).
2. ``model``    tiles/s of the network alone (batch 8 of 224^2) for each width
                (the bundled 16-128, the paper's 64-512 with random weights), precision
                and engine installed, and the share of the measured bfloat16
                convolution rate that is (FLOPs of the network's convolutions per
                tile x tiles/s / rate). ``tensorflow-unfolded`` is the network
                as it ran before batch norms were folded (roadseg.fused).
3. ``predict``  whole ``roadseg predict`` with defaults on a ``--size``^2 synthetic scene,
                this tree against ``--before REV`` (checked out into a temporary
                worktree), each a child process: wall time and peak RSS.
4. ``memory``   peak RSS on ``--small``^2 and twice that side: defaults, ``--tta d4``,
                and ``--overlap 112 --tta d4 --precision float32`` against the
                in-memory "smooth tiled predictions" approach at the same settings
                (scripts/smooth_tiled_baseline.py).
5. ``agree``    each engine and precision ``auto`` may pick against float32
                TensorFlow on a synthetic scene and on Dubai Tile 8 (if present):
                mean |dp| and IoU of the masks at the model's threshold.

Nothing here is a test: it prints what it measured, with the machine it ran on.

Usage:
    python scripts/bench_cpu_limit.py [--size 8192] [--small 2048] [--before REV]
        [--sections limit,model,predict,memory,agree]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from bench_predict_targets import child, iou, predict_cmd, read_prob  # noqa: E402

WIDTHS = {"16-128": None, "64-512": (64, 128, 256, 512)}
SECTIONS = ("limit", "model", "predict", "memory", "agree")


def cpu_line() -> str:
    name, flags = platform.machine(), ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        name = next(
            (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), name
        )
        wanted = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")
        flags = " ".join(w for w in wanted if f" {w}" in text)
    except OSError:
        pass
    return f"{name} ({flags}), {len(os.sched_getaffinity(0))} cores"


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Best of ``repeat`` calls, after one warm-up call, in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def machine_rates() -> dict[str, float]:
    """TFLOP/s of a matrix product and of a 3x3 convolution, per dtype."""
    import tensorflow as tf

    rates = {}
    for dtype in (tf.bfloat16, tf.float32):
        a = tf.random.uniform((4096, 4096), dtype=tf.float32)
        a = tf.cast(a, dtype)
        mm = tf.function(lambda x: tf.linalg.matmul(x, x))
        seconds = timed(lambda mm=mm, a=a: mm(a).numpy())
        rates[f"matmul {dtype.name}"] = 2 * 4096**3 / seconds / 1e12
        x = tf.cast(tf.random.uniform((8, 224, 224, 64)), dtype)
        w = tf.cast(tf.random.uniform((3, 3, 64, 64)), dtype)
        conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"))
        flops = 2 * 8 * 224 * 224 * 9 * 64 * 64
        seconds = timed(lambda conv=conv, x=x, w=w: conv(x, w).numpy())
        rates[f"conv {dtype.name}"] = flops / seconds / 1e12
    return rates


def conv_flops(model, tile: int) -> float:  # type: ignore[no-untyped-def]
    """FLOPs of one tile through the model's convolutions (2 x multiply-adds)."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape  # (None, h, w, c) for a fixed-size input
            h, w = out[1] or tile, out[2] or tile
            k = layer.kernel_size[0] * layer.kernel_size[1]
            cin = layer.input.shape[-1]
            total += 2.0 * h * w * k * cin * layer.filters
    return total


def network_rates(rate: float) -> None:
    import keras

    from roadseg.fused import inference_network
    from roadseg.inference import make_infer_fn
    from roadseg.model import build_resunet, load_model
    from roadseg.precision import with_precision

    try:
        from roadseg.engines import available_engines, network_fn
    except ImportError:  # before the engines landed
        available_engines, network_fn = (lambda: []), None

    print("| width | precision | engine | tiles/s | TFLOP/s | share of the bf16 conv rate |")
    print("| --- | --- | --- | --- | --- | --- |")
    x = np.random.default_rng(0).random((8, 224, 224, 3), dtype=np.float32)
    for width, filters in WIDTHS.items():
        loaded = load_model(None)
        if filters is not None:
            keras.utils.set_random_seed(0)
            loaded = type(loaded)(
                build_resunet((None, None, 3), filters),
                type(loaded.info)(filters=filters, tile_size=224, bands=3),
                loaded.path,
                loaded.sha256,
            )
        fixed = build_resunet((224, 224, 3), loaded.info.filters)
        flops = conv_flops(fixed, 224)
        for precision in ("float32", "bfloat16"):
            runs = {
                "tensorflow": make_infer_fn(
                    inference_network(loaded.model, loaded.info.filters, 3, precision), 224, 3
                ),
                "tensorflow-unfolded": make_infer_fn(
                    with_precision(loaded.model, precision), 224, 3
                ),
            }
            from roadseg.engines import ENGINE_PRECISIONS

            for engine in available_engines():
                if network_fn is not None and precision in ENGINE_PRECISIONS[engine]:
                    runs[engine] = network_fn(loaded, engine, precision)
            for engine, fn in runs.items():
                seconds = timed(lambda fn=fn: fn(x), repeat=3)
                tiles = 8 / seconds
                tflops = tiles * flops / 1e12
                print(
                    f"| {width} | {precision} | {engine} | {tiles:.1f} | {tflops:.2f} "
                    f"| {100 * tflops / rate:.0f} % |",
                    flush=True,
                )


def scene(folder: Path, size: int) -> Path:
    from roadseg.synthetic import SceneSpec, write_scene

    path = folder / f"scene{size}.tif"
    if not path.is_file():
        write_scene(folder, size, size, SceneSpec(seed=11), name=f"scene{size}")
    return path


def whole_runs(work: Path, size: int, before: str | None) -> None:
    src = scene(work, size)
    trees = [("this tree", ROOT)]
    if before:
        old = work / "before"
        if not old.exists():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), before],
                check=True,
                capture_output=True,
            )
        trees.insert(0, (f"before ({before})", old))
    print(f"| `roadseg predict` defaults, {size}^2 | wall | peak RSS |")
    print("| --- | --- | --- |")
    first = None
    for name, tree in trees:
        env_cmd = ["env", f"PYTHONPATH={tree}"]
        # Both trees run this tree's bundled model: the code is compared, not the weights.
        model = str(ROOT / "roadseg" / "models" / "roadseg_default.keras")
        wall, rss = child(env_cmd + predict_cmd(src, work / f"out_{size}.tif", model))
        first = first or wall
        print(f"| {name} | {wall:.1f} s ({first / wall:.2f}x) | {rss / 1024:.2f} GB |", flush=True)


def memory_runs(work: Path, small: int) -> None:
    base_code = """
import os, sys, numpy as np, rasterio
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {scripts!r})
from smooth_tiled_baseline import predict_in_memory
from roadseg.model import load_model
from roadseg.predict import make_infer_fn
from roadseg.preprocess import compute_normalizer
m = load_model(None)
f = make_infer_fn(m.model, 224, 3)
with rasterio.open({src!r}) as ds:  # the model's own input normalisation, as roadseg's
    norm = compute_normalizer(ds, (1, 2, 3), m.info.normalization)
    img = norm(np.moveaxis(ds.read(), 0, -1))
p = predict_in_memory(img, f, 224, 112, 8, True)
np.save({out!r}, p)
"""
    print("| run | size | wall | peak RSS |")
    print("| --- | --- | --- | --- |")
    equal = ("--overlap", "112", "--tta", "d4", "--precision", "float32", "--no-resample")
    for size in (small, 2 * small):
        src = scene(work, size)
        for what, extra in (
            ("defaults", ()),
            ("--tta d4", ("--tta", "d4")),
            ("50 % overlap, D4, float32", equal),
        ):
            if size != small and what != "50 % overlap, D4, float32":
                continue
            out = work / f"mem_{size}.tif"
            wall, rss = child(predict_cmd(src, out, None, "--float", *extra))
            print(f"| roadseg {what} | {size}^2 | {wall:.1f} s | {rss / 1024:.2f} GB |", flush=True)
        if size == small:
            npy = work / "inmem.npy"
            code = base_code.format(scripts=str(HERE), src=str(src), out=str(npy))
            wall, rss = child([sys.executable, "-c", code])
            agree = iou(np.load(npy) >= 0.5, read_prob(out) >= 0.5)
            print(
                f"| in-memory, 50 % overlap, D4, float32 | {size}^2 | {wall:.1f} s "
                f"| {rss / 1024:.2f} GB (mask IoU with roadseg {agree:.3f}) |",
                flush=True,
            )


def agreement(work: Path, small: int) -> None:
    from roadseg.model import load_model

    try:
        from roadseg.engines import available_engines
    except ImportError:
        available_engines = lambda: ["tensorflow"]  # noqa: E731
    threshold = load_model(None).info.threshold
    cases = [("synthetic", scene(work, small), ())]
    dubai = ROOT.parent / "shared" / "data" / "dubai" / "Semantic segmentation dataset" / "Tile 8"
    cases += [
        (f"dubai {p.stem}", p, ("--gsd", "1.2"))
        for p in sorted((dubai / "images").glob("*.jpg"))[:3]
    ]
    print("| engine | precision | image | mean abs dp | mask IoU |")
    print("| --- | --- | --- | --- | --- |")
    for name, src, extra in cases:
        ref = work / "agree_ref.tif"
        child(predict_cmd(src, ref, None, "--float", "--precision", "float32", *extra))
        want = read_prob(ref)
        from roadseg.engines import ENGINE_PRECISIONS

        for engine in ["tensorflow", *available_engines()]:
            for precision in ("float32", "bfloat16"):
                if engine == "tensorflow" and precision == "float32":
                    continue
                if engine != "tensorflow" and precision not in ENGINE_PRECISIONS[engine]:
                    continue
                out = work / "agree.tif"
                opts = ("--float", "--precision", precision, *extra)
                if engine != "tensorflow":
                    opts = (*opts, "--engine", engine)
                child(predict_cmd(src, out, None, *opts))
                got = read_prob(out)
                valid = (want >= 0) & (got >= 0)
                dp = float(np.abs(got - want)[valid].mean())
                agree = iou(got[valid] >= threshold, want[valid] >= threshold)
                print(f"| {engine} | {precision} | {name} | {dp:.4f} | {agree:.4f} |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--small", type=int, default=2048)
    p.add_argument("--before", default=None, help="a git revision to compare whole runs with")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    sections = args.sections.split(",")
    print(f"CPU: {cpu_line()}; {time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        # Child processes first: Linux keeps a process's peak RSS across fork and
        # exec, so a child started after this process has loaded models would
        # report this process's peak as its own.
        if "predict" in sections:
            print()
            whole_runs(work, args.size, args.before)
        if "memory" in sections:
            print()
            memory_runs(work, args.small)
        if "agree" in sections:
            print()
            agreement(work, args.small)
        if "limit" in sections or "model" in sections:
            rates = machine_rates()
            print("\n| machine | TFLOP/s |\n| --- | --- |")
            for k, v in rates.items():
                print(f"| {k} | {v:.2f} |")
            if "model" in sections:
                print()
                network_rates(rates["conv bfloat16"])
        if args.before and (work / "before").exists():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "before")],
                check=False,
            )
    print(f"\ncommand: python scripts/bench_cpu_limit.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
