"""The chunk grid and where the cleaned mask of the chunks is kept: :class:`Chunk`
and :func:`chunk_grid`; :class:`MaskStore` (in memory for one chunk, else a 1-bit
temporary file) and :class:`ChunkFiles` (one 1-bit file per chunk, on Dask), both
read by the thinning windows through :class:`MaskReader`."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """One square of the chunk grid: its place ``(i, j)`` in the grid and its pixels,
    rows ``r0:r1`` and columns ``c0:c1`` of the raster."""

    i: int
    j: int
    r0: int
    r1: int
    c0: int
    c1: int


def chunk_grid(height: int, width: int, size: int) -> list[Chunk]:
    """The chunks of a ``height`` x ``width`` raster, ``size`` pixels square (smaller
    along the last row and column), row by row."""
    out = []
    for i, r0 in enumerate(range(0, height, size)):
        for j, c0 in enumerate(range(0, width, size)):
            out.append(Chunk(i, j, r0, min(r0 + size, height), c0, min(c0 + size, width)))
    return out


class MaskStore:
    """The cleaned mask of the whole raster: in memory for one chunk, else a
    1-bit-per-pixel temporary file read and written with plain file I/O (so it
    costs no resident memory)."""

    def __init__(self, height: int, width: int, single: bool, folder: Path | None) -> None:
        self.height, self.width = height, width
        self.array: np.ndarray | None = np.zeros((height, width), bool) if single else None
        self.rowbytes = (width + 7) // 8
        self._tmp: Any = None
        self.fd = -1
        if not single:
            self._tmp = tempfile.TemporaryDirectory(prefix=".roadseg-", dir=folder)
            path = os.path.join(self._tmp.name, "clean.bits")
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0))
            os.ftruncate(self.fd, self.rowbytes * height)

    def write(self, r0: int, c0: int, block: np.ndarray) -> None:
        if self.array is not None:
            self.array[r0 : r0 + block.shape[0], c0 : c0 + block.shape[1]] = block
            return
        packed = np.packbits(block, axis=1)  # c0 is a multiple of 8
        b0 = c0 // 8
        for k in range(block.shape[0]):
            os.pwrite(self.fd, packed[k].tobytes(), (r0 + k) * self.rowbytes + b0)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        if self.array is not None:
            return self.array[r0:r1, c0:c1].copy()
        b0, b1 = c0 // 8, (c1 + 7) // 8
        buf = np.empty((r1 - r0, b1 - b0), np.uint8)
        for k in range(r1 - r0):
            buf[k] = np.frombuffer(
                os.pread(self.fd, b1 - b0, (r0 + k) * self.rowbytes + b0), np.uint8
            )
        bits = np.unpackbits(buf, axis=1)
        return bits[:, c0 - 8 * b0 : c1 - 8 * b0].astype(bool)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class MaskReader(Protocol):
    """Where the thinning reads the cleaned mask: :class:`MaskStore` or :class:`ChunkFiles`."""

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ChunkFiles:
    """The cleaned mask as one 1-bit file per chunk, in a folder every Dask worker sees.

    Used instead of :class:`MaskStore` on Dask: each cleaning task writes its own
    chunk's file (whole, through a rename, so a retried or duplicated task never
    leaves a torn file, and no two processes write to one file, which a network
    file system might not keep apart); a thinning task reads the chunks its window
    overlaps. Picklable: a folder name and the grid.
    """

    folder: str
    height: int
    width: int
    size: int

    def path(self, i: int, j: int) -> str:
        return os.path.join(self.folder, f"clean_{i}_{j}.bits")

    def write(self, chunk: Chunk, block: np.ndarray) -> None:
        packed = np.packbits(block, axis=1)
        final = self.path(chunk.i, chunk.j)
        tmp = f"{final}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(packed.tobytes())
        os.replace(tmp, final)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        size = self.size
        out = np.zeros((r1 - r0, c1 - c0), bool)
        for i in range(r0 // size, (r1 - 1) // size + 1):
            cr0, cr1 = i * size, min(i * size + size, self.height)
            a0, a1 = max(r0, cr0), min(r1, cr1)
            for j in range(c0 // size, (c1 - 1) // size + 1):
                cc0, cc1 = j * size, min(j * size + size, self.width)
                rowbytes = (cc1 - cc0 + 7) // 8
                with open(self.path(i, j), "rb") as fh:
                    fh.seek((a0 - cr0) * rowbytes)
                    data = fh.read((a1 - a0) * rowbytes)
                if len(data) != (a1 - a0) * rowbytes:
                    raise OSError(f"{self.path(i, j)} is shorter than a chunk of the mask")
                bits = np.unpackbits(np.frombuffer(data, np.uint8).reshape(a1 - a0, rowbytes), 1)
                b0, b1 = max(c0, cc0), min(c1, cc1)
                out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = bits[:, b0 - cc0 : b1 - cc0]
        return out
