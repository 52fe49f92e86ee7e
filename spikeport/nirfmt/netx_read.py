"""Read a netx HDF5 file into plain blocks, validated, with the values netx itself would use
(``NetDict``: ``type`` decoded, ``weight`` / ``weight_rec`` / ``bias`` cast to int by truncation).

A block is a dict: ``index``, ``type`` and the arrays of its group; ``neuron`` a dict of scalars.
Every failure is a one-line SpikeportError naming the file and the block. No lava import.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.errors import SpikeportError

MAX_BLOCKS = 1000
MAX_ELEMENTS = 1 << 28  # per dataset
INT_KEYS = ("weight", "weight_rec", "bias")  # netx casts these with astype(int)
MAX_BYTES = 4 << 30
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _dataset(ds, where: str):
    import h5py

    if ds.size > MAX_ELEMENTS:
        raise SpikeportError(f"{where}: {ds.size} values, more than {MAX_ELEMENTS}")
    if ds.dtype.kind not in "iufbS" and h5py.check_string_dtype(ds.dtype) is None:  # slayer: variable-length
        raise SpikeportError(f"{where}: unsupported data type {ds.dtype}")
    return ds[()]


def _text(val, where: str) -> str:
    arr = np.asarray(val)
    raw = arr.reshape(-1)[0] if arr.size else b""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, np.bytes_)):
        raise SpikeportError(f"{where}: 'type' must be a string")
    return bytes(raw).decode("ascii", "replace")


def _group(group, where: str) -> dict:
    import h5py

    out: dict = {}
    for key, item in group.items():
        here = f"{where} '{key}'"
        if isinstance(item, h5py.Group):
            out[key] = _group(item, here)
        elif key == "type":
            out[key] = _text(_dataset(item, here), here)
        else:
            val = _dataset(item, here)
            if key in INT_KEYS:
                arr = np.asarray(val)
                if arr.dtype.kind not in "iufb" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
                    raise SpikeportError(f"{here}: must hold finite numbers")
                val = arr.astype(np.int64)  # what netx does (truncation toward zero)
            out[key] = val
    return out


def read_blocks(path: str | Path) -> tuple[list[dict], dict]:
    """(blocks in order, root attributes) of the netx file at ``path``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SpikeportError(f"{path}: file not found")
    if path.stat().st_size > MAX_BYTES:
        raise SpikeportError(f"{path}: larger than {MAX_BYTES} bytes")
    with open(path, "rb") as fh:
        if fh.read(8) != HDF5_MAGIC:
            raise SpikeportError(f"{path}: not an HDF5 file (netx model.net)")
    try:
        with h5py.File(path, "r") as fh:
            if "layer" not in fh or not isinstance(fh["layer"], h5py.Group):
                raise SpikeportError(f"{path}: no 'layer' group (not a netx network file)")
            layer = fh["layer"]
            keys = sorted(layer.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if not keys or len(keys) > MAX_BLOCKS or keys != [str(i) for i in range(len(keys))]:
                raise SpikeportError(f"{path}: 'layer' must hold blocks '0'..'n-1' (at most {MAX_BLOCKS}), "
                                     f"got {sorted(layer.keys())[:5]}")
            blocks = []
            for k in keys:
                if not isinstance(layer[k], h5py.Group) or "type" not in layer[k]:
                    raise SpikeportError(f"{path}: block {k} has no 'type'")
                blocks.append({"index": int(k), **_group(layer[k], f"{path}: block {k}")})
            attrs = {k: np.asarray(v) for k, v in fh.attrs.items()}
    except OSError as err:
        raise SpikeportError(f"{path}: cannot read HDF5 ({' '.join(str(err).split())})") from None
    return blocks, attrs
