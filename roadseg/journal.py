"""The journal that lets ``roadseg predict --resume`` continue a killed run.

Beside the output, a hidden folder ``.<output name>.resume/`` holds:

- ``run.json``: what the run is (the input's path, size and modification
  time, the model's SHA-256 and every option that changes pixels). A journal
  of another run is never continued.
- ``block_000000.tif``, ``block_000001.tif``, ...: each finished block of 256
  output rows, as the output encodes it (probability band, and the mask band
  when a mask is written), each written under a temporary name and renamed
  when complete, so a block file on disk is always whole, even after
  ``kill -9``. Each file reaches the disk (fsync) before it is renamed, so
  even a crash of the machine cannot leave a block named but empty; a block
  file that still cannot be read ends the finished part.

A resumed run copies the finished blocks from the top of the raster, and
recomputes only the tile rows that touch an unfinished row. Each output row
gets contributions from the same tiles in the same order as in an
uninterrupted run, so the result is identical. The folder is removed when
the output is complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from roadseg.errors import RoadsegError
from roadseg.raster_io import atomic_output

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


def journal_dir(output_path: Path) -> Path:
    """The journal folder of an output."""
    return output_path.with_name(f".{output_path.name}.resume")


def run_identity(input_path: Path, model_sha256: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What makes two runs produce the same pixels."""
    st = input_path.stat()
    return {
        "input": str(input_path.resolve()),
        "input_size": st.st_size,
        "input_mtime_ns": st.st_mtime_ns,
        "model_sha256": model_sha256,
        "settings": {k: str(v) for k, v in sorted(settings.items())},
    }


class RunJournal:
    """Finished output blocks of one run, on disk beside its output."""

    def __init__(self, output_path: Path, identity: dict[str, Any], block: int) -> None:
        self.folder = journal_dir(output_path)
        self.identity = identity
        self.block = block

    def start(self) -> int:
        """Open the journal; return how many blocks from the top are finished.

        A journal of another run (another input, model or options) is
        discarded with a warning and the run starts over.
        """
        run_file = self.folder / RUN_FILE
        if run_file.is_file():
            try:
                same = json.loads(run_file.read_text()) == self.identity
            except (OSError, ValueError):
                same = False
            if same:
                done = 0
                while self._readable(done):
                    done += 1
                if done:
                    log.info("resuming: %d finished block(s) of %d rows", done, self.block)
                return done
            log.warning(
                "the unfinished run in %s used another input, model or options; starting over",
                self.folder.name,
            )
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(exist_ok=True)
        self._write_atomic(run_file, json.dumps(self.identity, indent=1).encode())
        return 0

    def attach(self) -> None:
        """Join a journal that :meth:`start` opened elsewhere (another process
        writing other blocks of the same run), without changing it.

        Raises:
            RoadsegError: there is no journal of this run (it was finished,
                removed, or belongs to another input, model or options).
        """
        try:
            same = json.loads((self.folder / RUN_FILE).read_text()) == self.identity
        except (OSError, ValueError):
            same = False
        if not same:
            raise RoadsegError(
                f"{self.folder} is missing or belongs to another run; run the command again"
            )

    def is_done(self, index: int) -> bool:
        """Whether block ``index`` is finished (exists and can be read)."""
        return self._readable(index)

    def save(self, index: int, bands: list[np.ndarray]) -> None:
        """Store finished block ``index`` (its encoded bands), atomically."""
        height, width = bands[0].shape
        with atomic_output(self.folder / self._name(index)) as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(
                    tmp,
                    "w",
                    driver="GTiff",
                    width=width,
                    height=height,
                    count=len(bands),
                    dtype=bands[0].dtype,
                    compress="zstd",
                    zstd_level=1,
                ) as ds:
                    for k, band in enumerate(bands, start=1):
                        ds.write(band, k)
            _fsync(tmp)  # the block's bytes reach the disk before its name does
        _fsync(self.folder)

    def load(self, index: int) -> list[np.ndarray]:
        """The encoded bands of finished block ``index``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(self.folder / self._name(index)) as ds:
                return [ds.read(k) for k in range(1, ds.count + 1)]

    def finish(self) -> None:
        """The output is complete: remove the journal."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _name(self, index: int) -> str:
        return f"block_{index:06d}.tif"

    def _readable(self, index: int) -> bool:
        """Block ``index`` exists and its header can be read (a file cut short
        by a crash of the machine is computed again, not copied)."""
        path = self.folder / self._name(index)
        if not path.is_file():
            return False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as ds:
                    return ds.height > 0 and ds.count > 0
        except rasterio.errors.RasterioError:
            log.warning("%s in %s is damaged; computing it again", path.name, self.folder.name)
            return False

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        with atomic_output(path) as tmp, open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync(path.parent)


def _fsync(path: str | Path) -> None:
    """Flush a file, or a folder's entries (a rename), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a folder; the rename still holds
        pass
    finally:
        os.close(fd)
