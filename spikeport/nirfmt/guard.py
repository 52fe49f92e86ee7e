"""Check a ``.nir`` (HDF5) file before ``nir.read`` touches it, and read graph-level fields safely.

``nir.read`` loads every dataset into memory as it is declared. A corrupt or hostile file can declare
a dataset of 2**40 elements (stored lazily, so the file stays small), link to other files, or nest
groups without end; h5py then allocates terabytes, reads files it was not given, or recurses until
the interpreter dies. :func:`check_file` walks the file's structure first (names, shapes and link
kinds only, no data) and refuses anything spikeport's graphs never contain, naming the object.
:func:`read_nir` is the one way spikeport reads a NIR file. The walk and one trial read of every array
run in a forked child with a timeout (:mod:`spikeport.files.isolate`): some corruptions make the HDF5
library itself loop or crash, which no check in this process could stop.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spikeport.errors import SpikeportError
from spikeport.files import fileio
from spikeport.files.isolate import run_isolated
from spikeport.nirfmt import spec

MAX_DATASET_BYTES = 1 << 30  # one array: 1 GiB (a 32k x 32k int8 weight matrix)
MAX_TOTAL_BYTES = 4 << 30  # all arrays of one graph
MAX_OBJECTS = 200_000  # groups + datasets
MAX_DEPTH = 48  # nested groups (a NIR graph nests node / nodes / NAME / metadata / KEY ...)
MAX_INPUTS = 50_000_000  # elements of one input sample
READ_TIMEOUT_S, READ_BYTES_PER_S = 8.0, 10e6  # the isolated trial read may take 8 s + 1 s per 10 MB
MAX_CHUNKS = 65_536  # chunks of one dataset (nir.write stores arrays contiguously; tiny chunks make reads crawl)
MAX_ABS = spec.MAX_ABS  # largest magnitude of a finite float parameter (weights, thresholds, time constants)
INFINITE_OK = spec.TAU_FIELDS  # time constants: positive; +inf is a neuron without leak


def check_file(path: str | Path) -> None:
    """Refuse a file that is missing, a pickle, not HDF5, or whose structure is unsafe to load."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SpikeportError(f"{path}: file not found")
    fileio.refuse_pickle(path)
    try:
        ok = h5py.is_hdf5(str(path))
    except OSError:
        ok = False
    if not ok:
        raise SpikeportError(f"{path}: not a NIR file (not HDF5)")
    timeout = READ_TIMEOUT_S + path.stat().st_size / READ_BYTES_PER_S
    run_isolated(lambda: _structure_and_data(path), timeout, str(path))


def _structure_and_data(path: Path) -> None:
    """Walk the structure (sizes, links) and then read every dataset once: run in a forked child, since
    a corrupt file can hang or crash the HDF5 library here (``spikeport.files.isolate``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            total = _walk(f, path, "", 0, [0])
            if total > MAX_TOTAL_BYTES:
                raise SpikeportError(f"{path}: arrays total {total / 2**30:.1f} GiB, more than the limit "
                                     f"{MAX_TOTAL_BYTES / 2**30:.0f} GiB")
            f.visititems(_read_dataset)
    except SpikeportError:
        raise
    except Exception as err:  # h5py raises OSError, KeyError, RuntimeError, ... on corrupt structure
        raise SpikeportError(f"{path}: corrupt HDF5 structure ({type(err).__name__}: {str(err)[:160]})") from None


def _read_dataset(_name: str, obj) -> None:
    """visititems callback: read a dataset once and discard it (returning None: a value would stop the visit)."""
    import h5py

    if isinstance(obj, h5py.Dataset):
        obj[()]


def _walk(group, path: Path, prefix: str, depth: int, count: list[int]) -> int:
    """Bytes declared by the datasets under ``group``; raises on links, external data, huge arrays."""
    import h5py

    if depth > MAX_DEPTH:
        raise SpikeportError(f"{path}: '{prefix}' nests groups deeper than {MAX_DEPTH} levels")
    total = 0
    for name in group:
        where = f"{prefix}{name}"
        count[0] += 1
        if count[0] > MAX_OBJECTS:
            raise SpikeportError(f"{path}: more than {MAX_OBJECTS} HDF5 objects")
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise SpikeportError(f"{path}: '{where}' is a {type(link).__name__}; NIR files hold no links")
        obj = group[name]
        if isinstance(obj, h5py.Group):
            total += _walk(obj, path, where + "/", depth + 1, count)
            continue
        if not isinstance(obj, h5py.Dataset):
            raise SpikeportError(f"{path}: '{where}' is a {type(obj).__name__}, not a group or dataset")
        if obj.external or obj.is_virtual:
            raise SpikeportError(f"{path}: dataset '{where}' stores its data outside the file")
        shape = obj.shape or ()
        n = int(np.prod(shape, dtype=object)) if shape else 1
        nbytes = n * max(int(obj.dtype.itemsize), 1)
        if nbytes > MAX_DATASET_BYTES:
            raise SpikeportError(f"{path}: dataset '{where}' declares shape {tuple(shape)} "
                                 f"({nbytes / 2**30:.3g} GiB), more than the limit {MAX_DATASET_BYTES / 2**30:.0f} GiB")
        if obj.chunks and shape:
            chunks = int(np.prod([-(-int(s) // int(c)) for s, c in zip(shape, obj.chunks)], dtype=object))
            if chunks > MAX_CHUNKS:
                raise SpikeportError(f"{path}: dataset '{where}' is stored in {chunks} chunks (limit {MAX_CHUNKS})")
        total += nbytes
    return total


def read_nir(path: str | Path, checked: bool = False):
    """``nir.read`` (no nir type check: spikeport checks shapes per node) after :func:`check_file`
    (unless already ``checked``); every failure is a one-line SpikeportError naming the file."""
    import nir

    if not checked:
        check_file(path)
    try:
        return nir.read(str(path), type_check=False)
    except Exception as err:  # nir/h5py raise many types on corrupt input
        raise SpikeportError(f"{path}: cannot read NIR graph ({type(err).__name__}: {str(err)[:200]})") from None


def _scan_types(path: Path) -> None:
    """Name the first node whose type nir cannot read (nir.read itself only says 'unknown')."""
    import h5py

    def walk(group, prefix: str) -> None:
        nodes = group.get("nodes")
        if nodes is None:
            return
        for name in nodes:
            sub = nodes[name]
            kind = sub.get("type")
            kind = kind[()] if kind is not None else b"<missing>"
            kind = kind.decode(errors="replace") if isinstance(kind, bytes) else str(kind)
            full = f"{prefix}{name}"
            if kind not in spec.KNOWN_NODES:
                raise SpikeportError(f"{path}: node '{full}': unknown node type {kind!r} "
                                     f"(spikeport reads {', '.join(sorted(spec.KNOWN_NODES))})")
            if kind == "NIRGraph":
                walk(sub, f"{full}.")

    try:
        with h5py.File(path, "r") as f:
            if "node" in f:
                walk(f["node"], "")
    except SpikeportError:
        raise
    except Exception as err:  # truncated files fail here or in nir.read
        raise SpikeportError(f"{path}: cannot read NIR graph ({type(err).__name__}: {err})") from None


def read(path: str | Path):
    """The one guarded read of a ``.nir`` file, any producer's: :func:`check_file`, every node type
    known (naming the first that is not), ``nir.read`` and :func:`check_values`."""
    check_file(path)
    _scan_types(Path(path))
    graph = read_nir(path, checked=True)
    check_values(graph, path)
    return graph


def check_values(graph, path: str | Path) -> None:
    """Every array parameter of every node (and of its ``metadata['loihi']``) is numeric, with no NaN;
    infinities only in time constants. Names the node and field of the first offender."""
    for name, node, field, value in _node_values(graph, ""):
        if isinstance(value, (bytes, str)):
            raise SpikeportError(f"{path}: node '{name}': field '{field}' must be numeric, got {_show(value)}")
        if not isinstance(value, np.ndarray) or value.dtype.kind in "biu":
            continue
        if value.dtype.kind != "f":
            raise SpikeportError(f"{path}: node '{name}': field '{field}' must be numeric, got dtype {value.dtype}")
        if np.isnan(value).any():
            raise SpikeportError(f"{path}: node '{name}': field '{field}' contains NaN")
        if field in INFINITE_OK:
            if (value <= 0).any():
                raise SpikeportError(f"{path}: node '{name}': time constant '{field}' must be positive")
        elif np.isinf(value).any():
            raise SpikeportError(f"{path}: node '{name}': field '{field}' contains infinite values")
        finite = value[np.isfinite(value)]
        if finite.size and np.abs(finite).max() > MAX_ABS:
            raise SpikeportError(f"{path}: node '{name}': field '{field}' holds {float(np.abs(finite).max()):.3g}, "
                                 f"beyond the plausible magnitude {MAX_ABS:.0e}")
    gmeta = graph.metadata if isinstance(getattr(graph, "metadata", None), dict) else {}
    sp = gmeta.get(spec.GRAPH_META) if isinstance(gmeta.get(spec.GRAPH_META), dict) else {}
    if "dt" in sp:
        dt = np.asarray(sp["dt"])
        if dt.size != 1 or dt.dtype.kind not in "fiu" or not (np.isfinite(dt) and dt > 0).all():
            raise SpikeportError(f"{path}: graph metadata 'spikeport.dt' must be a positive number of seconds, "
                                 f"got {_show(sp['dt'])}")


def _node_values(graph, prefix: str):
    """(node name, node, field, value) for the array fields of every node, nested graphs included."""
    skip = ("metadata", "input_type", "output_type", "nodes", "edges", "type_check")
    for name, node in (getattr(graph, "nodes", None) or {}).items():
        full = f"{prefix}{name}"
        if type(node).__name__ == "NIRGraph":
            yield from _node_values(node, f"{full}.")
            continue
        for field, value in vars(node).items():
            if field not in skip and isinstance(value, (np.ndarray, np.generic, bytes, str)):
                yield full, node, field, np.asarray(value) if isinstance(value, np.generic) else value
        meta = getattr(node, "metadata", None)
        lo = meta.get(spec.NODE_META) if isinstance(meta, dict) else None
        for field, value in (lo.items() if isinstance(lo, dict) else ()):
            if isinstance(value, (np.ndarray, np.generic, float)):
                yield full, node, f"metadata.loihi.{field}", np.asarray(value)


def check_dequantized(float_weight: np.ndarray, q: np.ndarray, lo: dict, where: str) -> None:
    """spikeport's writers store ``float weight = int8 weight * weight_scale`` (zero outside ``mask``):
    when ``weight_scale`` is given, a bit flip or an edit on either side shows up here."""
    if "weight_scale" not in lo:
        return
    scale = np.asarray(lo["weight_scale"])
    if scale.size != 1 or scale.dtype.kind != "f" or not (np.isfinite(scale) and scale > 0).all():
        raise SpikeportError(f"{where}: metadata 'weight_scale' must be a positive number, "
                             f"got {_show(lo['weight_scale'])}")
    mask = lo.get("mask")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != q.shape:
            raise SpikeportError(f"{where}: mask shape {mask.shape} differs from weight shape {q.shape}")
        q = np.where(mask.astype(bool), q, 0)
    expected = q.astype(np.float64) * float(scale.reshape(()))
    bad = ~np.isclose(np.asarray(float_weight, np.float64), expected, rtol=1e-6, atol=1e-9 * float(scale.reshape(())))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SpikeportError(f"{where}: {int(bad.sum())} float weights differ from the Loihi integers times "
                             f"weight_scale (first at {first}: {float(np.asarray(float_weight)[first]):.6g} vs "
                             f"{float(expected[first]):.6g}); the file was altered or corrupted")


def int_field(value: Any, where: str, lo: int, hi: int) -> int:
    """A scalar integer in [lo, hi] (numpy or Python, bool refused); ``where`` names the field."""
    arr = np.asarray(value) if value is not None else np.asarray(None)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise SpikeportError(f"{where} must be an integer, got {_show(value)}")
    val = int(arr.reshape(()))
    if not lo <= val <= hi:
        raise SpikeportError(f"{where} is {val}, outside [{lo}, {hi}]")
    return val


def shape_field(value: Any, where: str, max_elements: int = MAX_INPUTS) -> tuple[int, ...]:
    """A shape: 1 to 4 positive integers whose product is at most ``max_elements``."""
    arr = np.asarray(value) if value is not None else np.asarray(None)
    if arr.dtype.kind not in "iu" or not 1 <= arr.size <= 4:
        raise SpikeportError(f"{where} must be 1 to 4 positive integers, got {_show(value)}")
    dims = tuple(int(s) for s in arr.ravel())
    if min(dims) < 1:
        raise SpikeportError(f"{where} must be positive, got {dims}")
    n = int(np.prod(dims, dtype=object))
    if n > max_elements:
        raise SpikeportError(f"{where} {dims} has {n} elements, more than the limit {max_elements}")
    return dims


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def weight_bits(value: Any, err, key: str) -> int:
    """A node's ``weight_bits`` / ``line_weight_bits`` metadata: absent -> 8; else 8 or 16 (``spec.WIDE_BITS``).
    ``err(why)`` makes the error."""
    if value is None:
        return 8
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iu" or int(arr.reshape(())) not in (8, spec.WIDE_BITS):
        raise err(f"metadata '{key}' must be 8 or {spec.WIDE_BITS}, got {_show(value)}")
    return int(arr.reshape(()))
