#!/usr/bin/env python
"""Peak RSS of the predict pipeline alone, with a stand-in for the network.

The network's memory (about 830 MB for TensorFlow, the model and one batch)
does not depend on the raster; what grows with the raster's width is the
pipeline's: the reader's strips, the blender's row buffer, the writer's
block and its queue. This runs ``predict_raster`` with a cheap numpy stand-in
model (no TensorFlow import), each size in its own child process, and prints
the peak RSS (wait4, as ``/usr/bin/time -v``) before and during the run, so a
change to those buffers shows in seconds instead of a 3-minute model run.

Usage:
    python scripts/bench_predict_memory.py SCENE.tif [SCENE2.tif ...] [--tile 224] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import rasterio

CHILD = """
import resource, sys, time
from pathlib import Path
import numpy as np
from roadseg.model import LoadedModel, ModelInfo
from roadseg.predict import PredictOptions, predict_raster

class Stand_in:
    input_shape = (None, None, None, 3)

model = LoadedModel(Stand_in(), ModelInfo(bands=3, tile_size={tile}, threshold=0.5),
                    Path("stand-in.keras"), "0" * 64)
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
predict_raster({src!r}, {out!r}, model, PredictOptions(batch_size={batch}, overwrite=True),
               infer_fn=lambda b: b[..., 0] * np.float32(0.9))
print(start, time.perf_counter() - t)
"""


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("scenes", nargs="+", type=Path)
    p.add_argument("--tile", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    print("| raster | size | RSS before predict_raster | peak RSS | peak - before | seconds |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for src in args.scenes:
            with rasterio.open(src) as ds:
                size = f"{ds.width}x{ds.height}"
            code = CHILD.format(
                tile=args.tile, src=str(src), out=str(Path(tmp) / "out.tif"), batch=args.batch_size
            )
            proc = subprocess.Popen(
                [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            _, status, usage = os.wait4(proc.pid, 0)
            out = proc.stdout.read().decode() if proc.stdout else ""
            if os.waitstatus_to_exitcode(status) != 0:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"failed on {src}:\n{err}")
            start, seconds = (float(v) for v in out.split()[-2:])
            peak = usage.ru_maxrss / 1024
            print(
                f"| {src.name} | {size} | {start:.0f} MB | {peak:.0f} MB | "
                f"{peak - start:.0f} MB | {seconds:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
