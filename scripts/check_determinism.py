#!/usr/bin/env python
"""Does a tile's probability depend on the thread count or on the size of its model call?

For each engine (TensorFlow, and OpenVINO and onnxruntime when installed),
width (the bundled model, and the paper's 64-512 with fixed random weights) and
precision, one child process per thread count runs the same 8 random tiles
through the engine's inference function (``roadseg.inference.make_infer_fn``,
``roadseg.engines.network_fn``) in calls of
1, 3 and 8 tiles, and a tile placed at another position among other tiles. The
table says which results are bit-identical: across thread counts, across call
sizes, across positions. This is what ``docs/faults.md`` ("Under which
conditions, exactly") quotes; run it on a new CPU before trusting the promise there.

Usage:
    python scripts/check_determinism.py [--threads 1,2] [--engines tensorflow,openvino]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r"""
import json, os, sys, hashlib
threads, precision, width, engine = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
import numpy as np
from roadseg.inference import make_infer_fn
from roadseg.model import build_resunet, load_model
from roadseg.precision import with_precision

keras.utils.set_random_seed(0)
if width == "bundled":
    model = load_model(None).model
else:
    model = build_resunet((224, 224, 3), tuple(int(f) for f in width.split("-")))
if engine == "tensorflow":
    infer = make_infer_fn(with_precision(model, precision), 224, 3, "none")
else:
    import tempfile
    from pathlib import Path
    from roadseg.engines import network_fn
    from roadseg.model import ModelInfo, save_model
    path = Path(tempfile.mkdtemp()) / "m.keras"
    if width == "bundled":
        info = load_model(None).info
    else:
        info = ModelInfo(filters=tuple(int(f) for f in width.split("-")))
    save_model(model, path, info)
    infer = network_fn(load_model(path), engine, precision, threads=threads)
rng = np.random.default_rng(0)
x = rng.random((8, 224, 224, 3), dtype=np.float32)
digest = lambda a: hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:12]
out = {f"call of {n}": digest(infer(x[:n])[0]) for n in (1, 3, 8)}
other = rng.random((8, 224, 224, 3), dtype=np.float32)
other[5] = x[0]
out["at position 5"] = digest(infer(other)[5])
print("RESULT " + json.dumps(out))
"""

WIDTHS = ("bundled", "64-128-256-512")


#: The precisions each engine is checked in (onnxruntime runs float32 only).
PRECISIONS = {
    "tensorflow": ("float32", "bfloat16"),
    "openvino": ("float32", "bfloat16"),
    "onnxruntime": ("float32",),
}


def run(threads: int, precision: str, width: str, engine: str) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), precision, width, engine],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    line = next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))
    result: dict[str, str] = json.loads(line[len("RESULT ") :])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument(
        "--engines", default=None, help="comma-separated (default: tensorflow and those installed)"
    )
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    from roadseg.engines import available_engines

    engines = args.engines.split(",") if args.engines else ["tensorflow", *available_engines()]
    cpu = platform.processor() or platform.machine()
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            text = f.read()
        wanted = ("avx512_bf16", "amx_bf16", "amx_int8", "avx512f", "avx2")
        flags = ",".join(w for w in wanted if f" {w}" in text)
    print(f"CPU {cpu} ({flags}), {os.cpu_count()} cores")
    print()
    print(
        "| engine | width | precision | same across threads | same across call sizes "
        "| same elsewhere in a call |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for engine, width in ((e, w) for e in engines for w in WIDTHS):
        for precision in PRECISIONS[engine]:
            results = [run(t, precision, width, engine) for t in threads]
            across_threads = all(r == results[0] for r in results)
            sizes = all(len({r[f"call of {n}"] for n in (1, 3, 8)}) == 1 for r in results)
            place = all(r["at position 5"] == r["call of 8"] for r in results)
            print(
                f"| {engine} | {width} | {precision} "
                f"| {_yes(across_threads)} ({args.threads} threads) "
                f"| {_yes(sizes)} (1, 3, 8 tiles) | {_yes(place)} |"
            )
    print()
    print(f"command: python scripts/check_determinism.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


if __name__ == "__main__":
    sys.exit(main())
