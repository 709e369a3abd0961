"""Feed mutated GeoTIFFs to ``roadseg predict`` and ``roadseg vectorize``; report misbehaviour.

Usage:
    python scripts/fuzz_inputs.py --cases 500 --seed 0 [--subprocess-every 25]
        [--timeout 120] [--workdir DIR] [--only CASE ...]

It writes a dozen small valid seed rasters (uint8/uint16/int16/float32 and
1/3/4 bands; striped and tiled; none, deflate, LZW, packbits, zstd and JPEG
compression; classic and BigTIFF; a palette mask; a cloud-optimized GeoTIFF
with overviews; a roadseg probability output), and a tiny ResUNet. Each case
mutates one seed one to three times (bit flips, byte overwrites, truncation,
a TIFF directory entry set to an extreme value, a chunk duplicated, inserted
or deleted, two seeds spliced) and runs one command on it with a few random
options. Cases are reproducible from ``(seed, case number)``.

Commands run in-process through click's ``CliRunner`` (fast: TensorFlow is
imported once) inside a worker process, so that a crash in GDAL or a hang
costs one case, not the run. Every ``--subprocess-every``-th case also runs as
``python -m roadseg ...`` for the real exit code and stderr.

Each case is classified:

* ``ok``: exit 0; the output opens, decodes completely (every block of a
  GeoTIFF, every feature of a GeoPackage or GeoJSON) and, for predict, has the
  input's size.
* ``error``: exit 1 or 2; the last line is one ``Error: ...`` line; no
  traceback; nothing at the output path; no temporary files left.
* ``BAD``: anything else: a traceback or unexpected exception, a crash or hang,
  a file at the output path after a failure, temporary files left behind, an
  output that does not open or has the wrong size.

Lines that roadseg's CLI prints as ``Warning: ...`` are fine; other stray
stderr lines (Python warnings, GDAL's own messages) are counted as ``noise``
without making a case BAD. Prints a summary table and the first lines of each
BAD case, whose inputs are kept under ``WORKDIR/bad/``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: stderr lines that TensorFlow/absl print at start-up in a fresh process.
_TF_NOISE = ("I0000 ", "W0000 ", "E0000 ", "WARNING: All log messages before absl")


# --------------------------------------------------------------------------- seeds


def make_seeds(folder: Path) -> list[Path]:
    """Small valid rasters covering the layouts a user may give roadseg."""
    import rasterio
    from affine import Affine

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    transform = Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0)

    def roads(h: int, w: int) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        m[h // 2 - 2 : h // 2 + 2] = 1
        m[:, w // 3 - 2 : w // 3 + 2] = 1
        return m

    def rgb(h: int, w: int, dtype: str = "uint8", scale: float = 255) -> np.ndarray:
        base = rng.random((3, h, w)) * 0.5 + np.stack([roads(h, w)] * 3) * 0.5
        return (base * scale).astype(dtype)

    specs: list[tuple[str, np.ndarray, dict[str, Any]]] = [
        ("rgb_strip.tif", rgb(48, 64), {}),
        ("rgb_tiled_deflate.tif", rgb(70, 90), dict(tiled=True, blockxsize=32, blockysize=32,
                                                    compress="deflate", nodata=0)),
        ("u16_lzw.tif", rgb(40, 56, "uint16", 4000), dict(compress="lzw", predictor=2)),
        ("i16_packbits.tif", rgb(33, 47, "int16", 2000) - 500, dict(compress="packbits")),
        ("f32_zstd.tif", rgb(64, 64, "float32", 1.0), dict(tiled=True, blockxsize=16,
                                                         blockysize=16, compress="zstd")),
        ("rgba.tif", np.concatenate([rgb(40, 40), np.full((1, 40, 40), 255, np.uint8)]),
         dict(photometric="rgb", alpha="yes")),
        ("jpeg_ycbcr.tif", rgb(64, 64), dict(tiled=True, blockxsize=16, blockysize=16,
                                             compress="jpeg", photometric="ycbcr")),
        ("bigtiff.tif", rgb(30, 40), dict(BIGTIFF="YES", compress="deflate")),
        ("mask_u8.tif", roads(80, 80), dict(tiled=True, blockxsize=32, blockysize=32,
                                            compress="deflate")),
        ("prob_f32.tif", (roads(60, 70) * 0.8 + 0.1).astype(np.float32), dict(nodata=-1.0)),
        ("palette_mask.tif", roads(50, 50), dict(photometric="palette")),
    ]  # fmt: skip
    seeds: list[Path] = []
    for name, data, profile in specs:
        path = folder / name
        try:
            with rasterio.open(
                path,
                "w",
                driver="GTiff",
                width=data.shape[-1],
                height=data.shape[-2],
                count=1 if data.ndim == 2 else data.shape[0],
                dtype=data.dtype,
                crs="EPSG:32633",
                transform=transform,
                **profile,
            ) as dst:
                dst.write(data if data.ndim == 3 else data[None])
                if name.startswith("palette"):
                    dst.write_colormap(1, {0: (0, 0, 0, 0), 1: (255, 40, 40, 255)})
        except Exception as exc:  # a compression this GDAL lacks: skip the seed
            print(f"seed {name} skipped: {exc}", file=sys.stderr)
            continue
        seeds.append(path)
    # A COG with overviews and internal structure as roadseg writes it.
    from rasterio.shutil import copy

    cog = folder / "cog_overviews.tif"
    copy(seeds[1], cog, driver="COG", BLOCKSIZE=32, OVERVIEW_COUNT=2)
    seeds.append(cog)
    return seeds


# --------------------------------------------------------------------------- mutations


def _ifd_entries(blob: bytes) -> list[tuple[int, int, int]]:
    """(entry offset, field type, value offset) of the first IFD's entries, classic or Big."""
    if len(blob) < 16 or blob[:2] not in (b"II", b"MM"):
        return []
    e = "<" if blob[:2] == b"II" else ">"
    try:
        big = struct.unpack_from(e + "H", blob, 2)[0] == 43
        ifd = struct.unpack_from(e + ("Q" if big else "I"), blob, 8 if big else 4)[0]
        count = struct.unpack_from(e + ("Q" if big else "H"), blob, ifd)[0]
        size, head = (20, 8) if big else (12, 2)
        out = []
        for i in range(min(count, 64)):
            entry = ifd + head + size * i
            kind = struct.unpack_from(e + "H", blob, entry + 2)[0]
            out.append((entry, kind, entry + (12 if big else 8)))
        return out
    except struct.error:
        return []


_INTERESTING = [0, 1, 2, 3, 7, 8, 255, 256, 0x7FFF, 0xFFFF, 10**6, 2**31 - 1, 2**32 - 1]


def mutate(blob: bytes, rng: np.random.Generator, others: list[bytes]) -> tuple[bytes, str]:
    """One random mutation of ``blob`` and its description."""
    data = bytearray(blob)
    n = len(data)
    kind = rng.choice(
        ["bitflip", "bytes", "truncate", "ifd", "ifd", "ifd", "duplicate", "insert", "delete",
         "splice"],
    )  # fmt: skip
    if n < 16:
        kind = "bytes"
    if kind == "bitflip":
        k = int(rng.integers(1, 9))
        for pos in rng.integers(0, n, k):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(data), f"bitflip x{k}"
    if kind == "bytes":
        k = int(rng.integers(1, 5))
        for pos in rng.integers(0, max(n, 1), k):
            if pos < n:
                data[pos] = int(rng.choice([0, 0xFF, 0x7F, 0x80, int(rng.integers(0, 256))]))
        return bytes(data), f"bytes x{k}"
    if kind == "truncate":
        cut = int(rng.integers(0, n))
        return bytes(data[:cut]), f"truncate {cut}/{n}"
    if kind == "ifd":
        entries = _ifd_entries(blob)
        if not entries:
            return mutate(blob, rng, others)
        entry, ftype, value_at = entries[int(rng.integers(0, len(entries)))]
        e = "<" if blob[:2] == b"II" else ">"
        value = int(rng.choice(_INTERESTING)) if rng.random() < 0.8 else int(rng.integers(0, 2**32))
        tag = struct.unpack_from(e + "H", data, entry)[0]
        if rng.random() < 0.15:  # change the field type instead
            struct.pack_into(e + "H", data, entry + 2, int(rng.integers(0, 19)))
            return bytes(data), f"ifd tag {tag} type"
        if ftype == 3:
            struct.pack_into(e + "H", data, value_at, value & 0xFFFF)
        else:
            struct.pack_into(e + "I", data, value_at, value & 0xFFFFFFFF)
        return bytes(data), f"ifd tag {tag} = {value}"
    a = int(rng.integers(0, n))
    length = int(rng.integers(1, max(2, min(4096, n - a))))
    chunk = bytes(data[a : a + length])
    if kind == "duplicate":
        b = int(rng.integers(0, n))
        data[b : b + len(chunk)] = chunk
        return bytes(data[:n]), f"duplicate {a}+{length} -> {b}"
    if kind == "insert":
        b = int(rng.integers(0, n))
        return bytes(data[:b] + chunk + data[b:]), f"insert {a}+{length} at {b}"
    if kind == "delete":
        return bytes(data[:a] + data[a + length :]), f"delete {a}+{length}"
    other = others[int(rng.integers(0, len(others)))]
    cut = int(rng.integers(8, n))
    return bytes(data[:cut] + other[cut:]), f"splice at {cut}"


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One fuzz case: a mutated input and one command line."""

    number: int
    seed_name: str
    mutations: list[str]
    command: str
    input: str
    output: str
    options: list[str]

    def argv(self, model: str) -> list[str]:
        args = [self.command, self.input, "-o", self.output, *self.options]
        return [*args, "--model", model] if self.command == "predict" else args


@dataclass
class Outcome:
    """How one case ended."""

    status: str  # ok | error | BAD
    reason: str = ""
    lines: list[str] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    seconds: float = 0.0


def make_case(number: int, seed: int, seeds: list[Path], blobs: list[bytes], root: Path) -> Case:
    rng = np.random.default_rng([seed, number])
    i = int(rng.integers(0, len(seeds)))
    blob, mutations = blobs[i], []
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        blob, what = mutate(blob, rng, blobs)
        mutations.append(what)
    folder = root / f"{number:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / ("input" + seeds[i].suffix)
    src.write_bytes(blob)
    out_dir = folder / "out"
    out_dir.mkdir()
    single_band = seeds[i].name.startswith(("mask", "prob", "palette"))
    command = (
        "vectorize" if (single_band and rng.random() < 0.8) or rng.random() < 0.2 else ("predict")
    )
    options: list[str] = []
    if command == "predict":
        out = out_dir / "roads.tif"
        options += ["--tile-size", "32", "--overlap", "8", "--batch-size", "4", "-q"]
        if single_band or rng.random() < 0.2:
            options += ["--bands", "1,1,1"]
        if rng.random() < 0.3:
            options += ["--mask", str(out_dir / "mask.tif")]
        if rng.random() < 0.2:
            options += ["--float"]
    else:
        out = out_dir / ("roads.geojson" if rng.random() < 0.3 else "roads.gpkg")
        options += ["-q"]
        if rng.random() < 0.3:
            options += ["--chunk-size", "64"]
    return Case(number, seeds[i].name, mutations, command, str(src), str(out), options)


# --------------------------------------------------------------------------- judging


def _check_output(case: Case) -> str:
    """Empty if the outputs of a successful run are whole; else what is wrong."""
    import rasterio

    from roadseg.raster_io import check_written

    out = Path(case.output)
    if not out.exists():
        return "exit 0 but no output file"
    try:
        if case.command == "predict":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(case.input) as src:
                    size = (src.width, src.height)
                outs = [out]
                if "--mask" in case.options:
                    outs.append(Path(case.options[case.options.index("--mask") + 1]))
                for path in outs:
                    check_written(path, read=True)
                    with rasterio.open(path) as ds:
                        if (ds.width, ds.height) != size:
                            return f"{path.name} is {ds.width}x{ds.height}, input {size}"
        else:
            from roadseg.vector_io import read_lines

            if out.suffix == ".gpkg":
                con = sqlite3.connect(out)
                try:
                    if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                        return "GeoPackage fails sqlite's integrity check"
                finally:
                    con.close()
            else:
                json.loads(out.read_text())
            read_lines(out)
    except Exception as exc:
        return f"output does not open: {type(exc).__name__}: {exc}"
    return ""


def judge(case: Case, code: int, text: str, exception: BaseException | None) -> Outcome:
    """Classify one run from its exit code, its stdout+stderr and any escaped exception."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(_TF_NOISE)]
    noise = [ln for ln in lines if not ln.startswith(("Error: ", "Warning: ", "Aborted"))][:3]
    out_dir = Path(case.output).parent
    temps = [p.name for p in out_dir.iterdir() if p.name.startswith(".")]
    if exception is not None and not isinstance(exception, SystemExit):
        frames = [
            f for f in traceback.extract_tb(exception.__traceback__) if "roadseg" in f.filename
        ]
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}"
        reason = f"{type(exception).__name__}: {exception}{where if frames else ''}"
        tb = traceback.format_exception(type(exception), exception, exception.__traceback__)
        return Outcome("BAD", reason, tb[-4:], noise)
    if "Traceback (most recent call last)" in text:
        return Outcome("BAD", "traceback on stderr", lines[-6:], noise)
    if temps:
        return Outcome("BAD", f"temporary files left: {temps}", lines[-3:], noise)
    if code == 0:
        problem = _check_output(case)
        return Outcome("BAD" if problem else "ok", problem, lines[-3:], noise)
    if code not in (1, 2):
        return Outcome("BAD", f"exit code {code}", lines[-6:], noise)
    if any(p.exists() for p in out_dir.iterdir()):
        return Outcome("BAD", f"files at the output after a failure: {os.listdir(out_dir)}")
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    if len(errors) != 1 or lines[-1] != errors[0]:
        return Outcome("BAD", "no single Error: line at the end", lines[-6:], noise)
    return Outcome("error", errors[0][:160], [], noise)


# --------------------------------------------------------------------------- running


def _worker(conn: Any, model: str, timeout: float) -> None:
    """Run cases in-process (CliRunner) until the parent closes the pipe."""
    import signal

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from click.testing import CliRunner

    from roadseg.cli import cli

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"case ran longer than {timeout:.0f} s")

    signal.signal(signal.SIGALRM, alarm)
    runner = CliRunner()
    while True:
        try:
            raw = conn.recv()
        except EOFError:
            return
        case = Case(**raw)
        started = time.perf_counter()
        signal.alarm(int(timeout))
        try:
            result = runner.invoke(cli, case.argv(model))
        finally:
            signal.alarm(0)
        outcome = judge(case, result.exit_code, result.output, result.exception)
        outcome.seconds = time.perf_counter() - started
        conn.send(asdict(outcome))


class Worker:
    """A child process running cases, restarted when a case crashes or hangs it."""

    def __init__(self, model: str, timeout: float) -> None:
        self.model, self.timeout = model, timeout
        self.ctx = mp.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(
            target=_worker, args=(child, self.model, self.timeout), daemon=True
        )
        self.proc.start()
        child.close()

    def run(self, case: Case) -> Outcome:
        self.conn.send(asdict(case))
        # The first case also pays for importing TensorFlow.
        if self.conn.poll(self.timeout + 120):
            try:
                return Outcome(**self.conn.recv())
            except EOFError:
                pass
        self.proc.join(timeout=1)
        code = self.proc.exitcode
        reason = f"worker crashed (exit {code})" if code is not None else "hang (killed)"
        self.proc.kill()
        self.proc.join()
        self._start()
        return Outcome("BAD", reason)

    def close(self) -> None:
        self.conn.close()
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()


def run_subprocess(case: Case, model: str, timeout: float) -> Outcome:
    """The same case as a real ``python -m roadseg`` process."""
    out_dir = Path(case.output).parent
    for p in out_dir.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "roadseg", *case.argv(model)],
            capture_output=True,
            text=True,
            timeout=timeout + 60,
        )
    except subprocess.TimeoutExpired:
        return Outcome("BAD", "hang (subprocess timed out)")
    outcome = judge(case, proc.returncode, proc.stdout + proc.stderr, None)
    outcome.seconds = time.perf_counter() - started
    return outcome


def build_model(path: Path) -> Path:
    from roadseg.model import ModelInfo, build_resunet, save_model

    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    return save_model(model, path, ModelInfo(filters=(4, 8, 8, 16), tile_size=32))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--subprocess-every",
        type=int,
        default=25,
        metavar="N",
        help="also run every N-th case as a real process (0: never)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--only", type=int, nargs="*", default=None, help="case numbers to run")
    args = parser.parse_args(argv)  # fmt: skip

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="roadseg-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    seeds = make_seeds(workdir / "seeds")
    blobs = [p.read_bytes() for p in seeds]
    model = str(build_model(workdir / "tiny.keras"))
    cases_dir, bad_dir = workdir / "cases", workdir / "bad"
    numbers = args.only if args.only else list(range(args.cases))
    print(f"{len(numbers)} cases, seed {args.seed}, {len(seeds)} seed rasters, in {workdir}")

    worker = Worker(model, args.timeout)
    table: Counter[tuple[str, str, str]] = Counter()
    noisy: Counter[str] = Counter()
    noise_examples: dict[str, str] = {}
    bad: list[tuple[Case, Outcome, str]] = []
    started = time.perf_counter()
    try:
        for k, number in enumerate(numbers):
            case = make_case(number, args.seed, seeds, blobs, cases_dir)
            runs = [("in-process", worker.run(case))]
            if args.subprocess_every and (k + 1) % args.subprocess_every == 0:
                runs.append(("subprocess", run_subprocess(case, model, args.timeout)))
            for how, outcome in runs:
                table[(case.command, how, outcome.status)] += 1
                if outcome.noise and outcome.status != "BAD":
                    noisy[f"{case.command} {how}"] += 1
                    noise_examples.setdefault(outcome.noise[0][:120], f"case {number}")
                if outcome.status == "BAD":
                    bad.append((case, outcome, how))
            if any(o.status == "BAD" for _, o in runs):
                keep = bad_dir / f"{number:05d}"
                shutil.rmtree(keep, ignore_errors=True)
                shutil.copytree(Path(case.input).parent, keep)
                (keep / "case.json").write_text(json.dumps(asdict(case), indent=1))
            shutil.rmtree(Path(case.input).parent, ignore_errors=True)
            if (k + 1) % 50 == 0:
                print(f"  {k + 1} cases, {len(bad)} BAD, {time.perf_counter() - started:.0f} s",
                      flush=True)  # fmt: skip
    finally:
        worker.close()

    print(f"\n{len(numbers)} cases in {time.perf_counter() - started:.0f} s\n")
    print("| command | run | ok | error | BAD |")
    print("| --- | --- | ---: | ---: | ---: |")
    for command in ("predict", "vectorize"):
        for how in ("in-process", "subprocess"):
            counts = [table[(command, how, s)] for s in ("ok", "error", "BAD")]
            if sum(counts):
                print(f"| {command} | {how} | {counts[0]} | {counts[1]} | {counts[2]} |")
    if noisy:
        print("\nRuns with stray stderr lines (not BAD):", dict(noisy))
        for line, where in list(noise_examples.items())[:5]:
            print(f"  {where}: {line}")
    if bad:
        print(f"\n{len(bad)} BAD runs (inputs kept in {bad_dir}):")
        for case, outcome, how in bad:
            print(f"- case {case.number} {case.command} ({how}) on {case.seed_name} "
                  f"[{'; '.join(case.mutations)}]: {outcome.reason}")  # fmt: skip
            for line in outcome.lines[-3:]:
                print(f"      {line.rstrip()[:200]}")
    else:
        print("\nNo BAD cases.")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
