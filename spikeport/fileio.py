"""Atomic output files and validated JSON input.

Every output is written to a temporary file in the destination folder and renamed over the target,
so a killed process never leaves a partial file behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from spikeport.errors import SpikeportError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsync'ed and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False, default=_jsonable) + "\n")


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` (e.g. a library's save function) and rename the result onto path."""
    with atomic_path(path) as tmp:
        writer(tmp)


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike, *, max_bytes: int = 16 << 20) -> dict:
    """Read a JSON object from ``path``; any problem is a SpikeportError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SpikeportError(f"{path}: file not found")
    if path.stat().st_size > max_bytes:
        raise SpikeportError(f"{path}: file is larger than {max_bytes} bytes")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SpikeportError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise SpikeportError(f"{path}: expected a JSON object at the top level")
    return obj
