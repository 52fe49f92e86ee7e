"""Atomic output files and validated JSON input.

Every output is written to a temporary file in the destination folder and renamed over the target,
so a killed process never leaves a partial file behind. The file gets the permissions any new file
of the user gets (``0o666`` less the umask), not the temporary file's private ``0o600``.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from spikeport.errors import SpikeportError


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 less the process umask."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it back at once
    os.umask(mask)
    return 0o666 & ~mask


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
        os.chmod(tmp_path, new_file_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def replace_between(path: str | os.PathLike, begin: str, end: str, text: str) -> None:
    """Replace what lies between the marker lines ``begin`` and ``end`` of a text file (a generated table in
    a document), atomically; a file without both markers is an error naming it."""
    doc = Path(path).read_text()
    if begin not in doc or end not in doc.split(begin, 1)[1]:
        raise SpikeportError(f"{path}: the markers {begin!r} ... {end!r} are missing")
    head, rest = doc.split(begin, 1)
    write_text(path, f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (no NaN / Infinity), written atomically; a value JSON cannot hold is an error naming the file."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False, default=_jsonable)
    except (ValueError, TypeError) as err:
        raise SpikeportError(f"{path}: cannot write the report ({err})") from None
    write_text(path, text + "\n")


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` (e.g. a library's save function) and rename the result onto path."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_npz(path: str | os.PathLike, arrays: dict, *, compressed: bool = False) -> None:
    """``np.savez`` (no pickled objects) to ``path`` atomically; the file handle is closed before the rename."""
    import numpy as np

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)

    write_with(path, _write)


def write_npy(path: str | os.PathLike, array) -> None:
    """``np.save`` (allow_pickle=False) to ``path`` atomically."""
    import numpy as np

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    write_with(path, _write)


def check_npy(path: str | os.PathLike) -> tuple[tuple[int, ...], Any]:
    """Read only the header of a ``.npy`` file: (shape, dtype). Refuses object arrays (pickle) and a
    header that declares more data than the file holds, before anything is allocated."""
    import numpy as np
    from numpy.lib import format as npformat

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = npformat.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = npformat.read_array_header_2_0(fh)
            offset = fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as err:
        raise SpikeportError(f"{path}: not a valid .npy file ({str(err)[:120]})") from None
    if dtype.hasobject:
        raise SpikeportError(f"{path}: holds Python objects (pickle); spikeport reads numeric arrays only")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize if shape else dtype.itemsize
    have = path.stat().st_size - offset
    if need != have:
        raise SpikeportError(f"{path}: header declares shape {shape} {dtype} ({need} bytes), the file holds {have}")
    return tuple(shape), dtype


# Pickle is never read: a pickle file can run arbitrary code when loaded.
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # protocols 2..5


def is_pickle(path: str | os.PathLike) -> bool:
    """True for a pickle (or torch.save zip) file: by suffix, or by its first bytes."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head[:2] in _PICKLE_MAGIC or (head[:4] == b"PK\x03\x04" and b"data.pkl" in head)


def refuse_pickle(path: str | os.PathLike) -> None:
    """Raise a SpikeportError if ``path`` is a pickle file, saying how to convert it safely."""
    if Path(path).is_file() and is_pickle(path):
        raise SpikeportError(
            f"{path}: is a pickle file (PyTorch .pt/.pth); spikeport never unpickles (a pickle can run code). "
            f"Convert a plain state dict with `spikeport convert-checkpoint {path} --config config.json "
            f"--out runs/x` (reads tensors only, torch.load(weights_only=True), and validates them)")


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
    refuse_pickle(path)
    if path.stat().st_size > max_bytes:
        raise SpikeportError(f"{path}: file is larger than {max_bytes} bytes")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as err:
        raise SpikeportError(f"{path}: not valid JSON ({str(err)[:200]})") from None
    if not isinstance(obj, dict):
        raise SpikeportError(f"{path}: expected a JSON object at the top level")
    return obj


def _no_constant(name: str) -> Any:
    """JSON has no NaN / Infinity (Python's json would accept them): refuse."""
    raise ValueError(f"{name} is not a JSON number")
