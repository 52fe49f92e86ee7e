"""Seeded mutators for the fuzz tests: corrupt bytes, HDF5 (NIR) structure, JSON, safetensors headers,
IDX / N-MNIST data files, TOML and .npy inputs. Every function takes a ``numpy.random.Generator``, so
a failing case is reproduced from its seed alone (``python -m tests.test_fuzz TARGET SEED``)."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np

NODE_KINDS = ["Affine", "Linear", "CubaLIF", "LIF", "IF", "LI", "Integrator", "Delay", "Conv1d", "Conv2d",
              "Flatten", "SumPool2d", "AvgPool2d", "Threshold", "Scale", "Input", "Output", "NIRGraph",
              "CubaLI", "Foo", ""]
HUGE = [2**31, 2**40, 10**12, 2**62]


# --- bytes -------------------------------------------------------------------------------------
def data_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of raw dataset storage in an HDF5 file (the rest is HDF5's own metadata)."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        def visit(_name, obj):
            if isinstance(obj, h5py.Dataset):
                off = obj.id.get_offset()
                if off is not None:
                    out.append((int(off), int(off) + int(obj.id.get_storage_size())))
        f.visititems(visit)
    return out


def mutate_bytes(data: bytes, rng: np.random.Generator, avoid: list[tuple[int, int]] | None = None) -> bytes:
    """Truncate, flip bits, overwrite or zero a range. With ``avoid`` (raw data ranges) most flips land
    in file-format metadata, where they break parsers rather than just change a number."""
    buf = bytearray(data)
    kind = int(rng.integers(4))
    if kind == 0 or len(buf) < 8:
        return bytes(buf[: int(rng.integers(0, max(len(buf), 1)))])

    def pos() -> int:
        for _ in range(20):
            p = int(rng.integers(len(buf)))
            if not avoid or rng.random() < 0.3 or not any(a <= p < b for a, b in avoid):
                return p
        return int(rng.integers(len(buf)))

    if kind == 1:
        for _ in range(int(rng.integers(1, 17))):
            p = pos()
            buf[p] ^= 1 << int(rng.integers(8))
    else:
        p, n = pos(), int(rng.integers(1, 65))
        chunk = rng.integers(0, 256, n, dtype=np.uint8).tobytes() if kind == 2 else bytes(n)
        buf[p: p + n] = chunk[: len(buf) - p]
    return bytes(buf)


def write_mutated_bytes(src: Path, dst: Path, rng: np.random.Generator, hdf5: bool = False) -> str:
    data = src.read_bytes()
    dst.write_bytes(mutate_bytes(data, rng, data_ranges(src) if hdf5 else None))
    return "bytes"


# --- NIR / HDF5 structure ----------------------------------------------------------------------
def _evil_value(rng: np.random.Generator, like=None):
    """A value a reader must refuse or survive: NaN, inf, negative, huge, wrong type, wrong rank."""
    shape = np.shape(like) if like is not None else ()
    options = [
        lambda: np.full(shape, np.nan), lambda: np.full(shape, np.inf), lambda: np.full(shape, -1, np.int64),
        lambda: np.full(shape, 2**62, np.int64), lambda: np.zeros(shape, np.float64) + 0.5,
        lambda: np.bytes_(b"abc"), lambda: np.zeros((0,), np.int64), lambda: np.zeros((2, 3, 4), np.int8),
        lambda: np.asarray(HUGE[int(rng.integers(len(HUGE)))], np.int64), lambda: np.asarray(True),
        lambda: np.arange(int(rng.integers(1, 6)), dtype=np.int64) * 1000, lambda: np.asarray(-(2**40)),
    ]
    return options[int(rng.integers(len(options)))]()


def _all_items(f) -> tuple[list[str], list[str]]:
    import h5py

    groups, datasets = [], []

    def visit(name, obj):
        (datasets if isinstance(obj, h5py.Dataset) else groups).append(name)
    f.visititems(visit)
    return groups, datasets


def _node_names(f) -> list[str]:
    return list(f["node/nodes"].keys()) if "node/nodes" in f else []


def mutate_nir(src: Path, dst: Path, rng: np.random.Generator) -> str:
    """Copy ``src`` and corrupt its structure with h5py; returns the mutation's name."""
    import h5py

    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        groups, datasets = _all_items(f)
        nodes = _node_names(f)
        kind = int(rng.integers(10))
        if kind == 0 and datasets + groups:  # a missing field or node
            victim = (datasets + groups)[int(rng.integers(len(datasets + groups)))]
            if victim in f:
                del f[victim]
            return f"delete:{victim}"
        if kind == 1 and datasets:  # a field with an evil value
            name = datasets[int(rng.integers(len(datasets)))]
            old = f[name][()]
            del f[name]
            f[name] = value = _evil_value(rng, old if isinstance(old, np.ndarray) else None)
            return f"evil-value:{name}={str(value)[:20]}"
        if kind == 2 and datasets:  # a huge, lazily stored dataset (no bytes written)
            name = datasets[int(rng.integers(len(datasets)))]
            del f[name]
            shape = tuple(int(s) for s in rng.choice([2**20, 2**24, 2**31, 10**6], size=int(rng.integers(1, 3))))
            f.create_dataset(name, shape=shape, dtype=rng.choice(["f8", "i8", "i1"]), chunks=(1,) * len(shape))
            return f"huge-dataset:{name}{shape}"
        if kind == 3 and nodes:  # random edges: cycles, self loops, unknown names
            names = nodes + ["ghost"]
            n = int(rng.integers(0, 12))
            edges = [(names[int(rng.integers(len(names)))], names[int(rng.integers(len(names)))]) for _ in range(n)]
            if "node/edges" in f:
                del f["node/edges"]
            f.create_dataset("node/edges", data=np.array(edges, dtype=object).reshape(-1, 2),
                             dtype=h5py.string_dtype())
            return "edges"
        if kind == 4 and nodes:  # cycle without a neuron: every neuron becomes an Affine-typed node
            for n in nodes:
                if f[f"node/nodes/{n}/type"][()] in (b"CubaLIF", "CubaLIF"):
                    del f[f"node/nodes/{n}/type"]
                    f[f"node/nodes/{n}/type"] = np.bytes_(b"Affine")
            edges = [(a, b) for a, b in zip(nodes, nodes[1:] + nodes[:1])]
            del f["node/edges"]
            f.create_dataset("node/edges", data=np.array(edges, dtype=object), dtype=h5py.string_dtype())
            return "cycle-no-neuron"
        if kind == 5 and nodes:  # a node of another (or unknown) type
            n = nodes[int(rng.integers(len(nodes)))]
            del f[f"node/nodes/{n}/type"]
            f[f"node/nodes/{n}/type"] = np.bytes_(NODE_KINDS[int(rng.integers(len(NODE_KINDS)))].encode())
            return "retype"
        if kind == 6:  # huge or absurd graph-level dimensions
            key = ["node/metadata/spikeport/time_steps", "node/metadata/spikeport/input_shape",
                   "node/nodes/input/shape"][int(rng.integers(3))]
            if key in f:
                del f[key]
            f[key] = np.asarray([HUGE[int(rng.integers(len(HUGE)))]] * int(rng.integers(1, 4)), np.int64) \
                if rng.random() < 0.7 else _evil_value(rng)
            return "huge-dims"
        if kind == 7 and datasets:  # NaN / inf inside float arrays
            floats = [d for d in datasets if f[d].dtype.kind == "f" and f[d].size]
            if floats:
                name = floats[int(rng.integers(len(floats)))]
                arr = np.array(f[name][()], dtype=np.float64)
                arr.reshape(-1)[int(rng.integers(arr.size))] = [np.nan, np.inf, -np.inf, 1e308][int(rng.integers(4))]
                f[name][...] = arr
                flat = arr.reshape(-1)
                return f"nan:{name}={flat[np.argmax(~np.isfinite(flat) | (np.abs(flat) > 1e300))]}"
            return "nan"
        if kind == 8 and datasets:  # a field replaced by a group, or a group by a dataset
            name = (datasets + groups)[int(rng.integers(len(datasets + groups)))]
            if name in f:
                del f[name]
                if rng.random() < 0.5:
                    f.create_group(name)
                else:
                    f[name] = np.bytes_(b"\x00\xff")
            return f"group-swap:{name}"
        if nodes:  # wrong shapes: transpose or trim one float / integer array of a node
            arrays = [d for d in datasets if d.startswith("node/nodes/") and f[d].ndim >= 1 and f[d].size > 1]
            if arrays:
                name = arrays[int(rng.integers(len(arrays)))]
                arr = f[name][()]
                del f[name]
                f[name] = arr.T if arr.ndim == 2 and rng.random() < 0.5 else arr[..., :-1]
            return "shape"
    return "noop"


# --- JSON, safetensors, TOML -------------------------------------------------------------------
def mutate_json_obj(obj, rng: np.random.Generator):
    """Delete, retype or poison one (nested) field of a JSON object; returns the new object."""
    obj = json.loads(json.dumps(obj))
    paths = []

    def walk(o, path):
        if isinstance(o, dict):
            for k, v in o.items():
                paths.append(path + [k])
                walk(v, path + [k])
    walk(obj, [])
    if not paths:
        return [obj]
    path = paths[int(rng.integers(len(paths)))]
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    choice = int(rng.integers(12))
    values = [None, "x", -1, 0, 2**63, 1e308, [], {}, [1, "a"], True, float("nan")]
    if choice == 11:
        del parent[path[-1]]
    else:
        parent[path[-1]] = values[choice]
    if rng.random() < 0.1:
        parent["unknown_field"] = 1
    return obj


def write_mutated_json(src: Path, dst: Path, rng: np.random.Generator) -> str:
    if rng.random() < 0.3:
        return write_mutated_bytes(src, dst, rng)
    obj = mutate_json_obj(json.loads(src.read_text()), rng)
    dst.write_text(json.dumps(obj))  # NaN is written as the token NaN (invalid strict JSON)
    return "json-field"


def mutate_safetensors(src: Path, dst: Path, rng: np.random.Generator) -> str:
    """Corrupt a safetensors file: its header JSON (dtype, shape, offsets, length) or its data."""
    data = src.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8: 8 + n]), data[8 + n:]
    kind = int(rng.integers(5))
    if kind == 0:
        return write_mutated_bytes(src, dst, rng)
    if kind == 1:  # header length lies
        dst.write_bytes(struct.pack("<Q", int(rng.choice([0, 7, n + 1, 2**40, 2**63]))) + data[8:])
        return "st-length"
    names = [k for k in header if k != "__metadata__"]
    t = header[names[int(rng.integers(len(names)))]]
    if kind == 2:
        t["dtype"] = str(rng.choice(["F64", "I8", "BOOL", "F16", "XX"]))
    elif kind == 3:
        t["shape"] = [int(s) for s in rng.choice([0, 1, 3, 2**31, 10**12], size=int(rng.integers(0, 4)))]
    else:  # NaN / inf values in a well-formed file
        a, _b = t["data_offsets"]
        body = bytearray(body)
        body[a: a + 4] = struct.pack("<f", [np.nan, np.inf, -np.inf][int(rng.integers(3))])
        body = bytes(body)
    h = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(h)) + h + body)
    return f"st-{['', '', 'dtype', 'shape', 'nan'][kind]}"


def write_mutated_toml(text: str, dst: Path, rng: np.random.Generator) -> str:
    lines = text.splitlines()
    kind = int(rng.integers(4))
    if kind == 0:
        dst.write_bytes(mutate_bytes(text.encode(), rng))
        return "bytes"
    i = int(rng.integers(len(lines)))
    if kind == 1:
        del lines[i]
    elif kind == 2 and "=" in lines[i]:
        key = lines[i].split("=")[0]
        lines[i] = key + "= " + str(rng.choice(['"x"', "-1", "0", "nan", "inf", "1e400", "[1, 2]", "{}", "true",
                                                 "99999999999999999999", '""']))
    else:
        lines.insert(i, str(rng.choice(["[[bad]]", "x = ", "unknown_key = 3", "[profiles.new]", "= 1"])))
    dst.write_text("\n".join(lines) + "\n")
    return "toml"


# --- data files --------------------------------------------------------------------------------
def idx_bytes(images: bool, n: int, rng: np.random.Generator) -> bytes:
    if images:
        return struct.pack(">IIII", 0x803, n, 28, 28) + rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes()
    return struct.pack(">II", 0x801, n) + rng.integers(0, 10, n, dtype=np.uint8).tobytes()


def write_idx_folder(folder: Path, rng: np.random.Generator, mutate: bool) -> str:
    """A tiny MNIST-like IDX folder; with ``mutate`` one file is corrupted (sizes, magic, bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"train-images-idx3-ubyte": idx_bytes(True, 20, rng), "train-labels-idx1-ubyte": idx_bytes(False, 20, rng),
             "t10k-images-idx3-ubyte": idx_bytes(True, 10, rng), "t10k-labels-idx1-ubyte": idx_bytes(False, 10, rng)}
    what = "clean"
    if mutate:
        name = list(files)[int(rng.integers(4))]
        data = bytearray(files[name])
        kind = int(rng.integers(3))
        if kind == 0:  # absurd header dims (huge allocations if trusted)
            for d in range(1 if "labels" in name else 3):
                if rng.random() < 0.6:
                    data[4 + 4 * d: 8 + 4 * d] = struct.pack(">I", int(rng.choice([0, 2**31, 2**32 - 1, 65536])))
            what = "idx-dims"
        elif kind == 1:
            data[:4] = struct.pack(">I", int(rng.integers(2**32)))
            what = "idx-magic"
        else:
            data = bytearray(mutate_bytes(bytes(data), rng))
            what = "idx-bytes"
        files[name] = bytes(data)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return what


def write_nmnist_folder(folder: Path, rng: np.random.Generator) -> str:
    """A tiny N-MNIST folder (one sample per split) whose event file is corrupted."""
    for split in ("Train", "Test"):
        sub = folder / split / "3"
        sub.mkdir(parents=True, exist_ok=True)
        ev = np.zeros((30, 5), np.uint8)
        ev[:, 0], ev[:, 1] = rng.integers(0, 34, 30), rng.integers(0, 34, 30)
        ev[:, 4] = np.arange(30)
        data = mutate_bytes(ev.tobytes(), rng) if split == "Test" else ev.tobytes()
        (sub / "00001.bin").write_bytes(data)
    return "nmnist"


def write_mutated_npy(dst: Path, shape: tuple[int, ...], rng: np.random.Generator) -> str:
    """An inputs .npy: corrupted bytes, a pickled object array, wrong shapes, NaN or negative values."""
    import io

    kind = int(rng.integers(5))
    arr = rng.integers(0, 2, shape).astype(np.float64)
    if kind == 0:
        buf = io.BytesIO()
        np.save(buf, arr)
        dst.write_bytes(mutate_bytes(buf.getvalue(), rng))
        return "npy-bytes"
    if kind == 1:
        np.save(dst, np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
        return "npy-pickle"
    if kind == 2:
        np.save(dst, rng.random(tuple(int(s) for s in rng.integers(1, 5, int(rng.integers(1, 5))))))
        return "npy-shape"
    if kind == 3:
        header = b"\x93NUMPY\x01\x00" + b"v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 3), }"
        dst.write_bytes(header.ljust(128, b" ")[:127] + b"\n")
        return "npy-huge"
    arr.reshape(-1)[int(rng.integers(arr.size))] = [np.nan, -1.0, np.inf][int(rng.integers(3))]
    np.save(dst, arr)
    return "npy-values"


# --- netx files ---------------------------------------------------------------------------------
NETX_KEYS = ["type", "shape", "weight", "weight_rec", "bias", "delay", "stride", "padding", "dilation", "groups",
             "neuron/type", "neuron/iDecay", "neuron/vDecay", "neuron/vThMant", "neuron/messageBits",
             "neuron/sigma_output", "neuron/activation", "neuron/refDelay", "neuron", "weight/real"]
NETX_TYPES = [b"input", b"dense", b"dense_rec", b"conv", b"flatten", b"pool", b"average", b"dense_comp", b"foo", b""]
NEURON_TYPES = [b"CUBA", b"LOIHI", b"SDNN", b"RF", b"RF_IZ", b"ALIF", b"", b"cuba"]


def _netx_value(rng: np.random.Generator, old) -> tuple[str, object]:
    """A replacement for a netx dataset: another shape, huge / negative / NaN values, a string, empty."""
    kind = int(rng.integers(8))
    shape = np.shape(old) if old is not None else (3,)
    if kind == 0:
        return "huge", np.full(shape, float(HUGE[int(rng.integers(len(HUGE)))]))
    if kind == 1:
        return "negative", -np.abs(np.ones(shape) * float(rng.integers(1, 300)))
    if kind == 2:
        return "nan", np.full(shape, np.nan)
    if kind == 3:
        return "string", np.array([b"spikeport"], "S10")
    if kind == 4:
        return "empty", np.zeros((0,))
    if kind == 5:
        return "reshaped", np.ones(tuple(int(rng.integers(1, 5)) for _ in range(int(rng.integers(0, 4)))))
    if kind == 6:
        return "random", rng.integers(-400, 400, shape).astype(np.float64)
    return "scalar", float(rng.integers(-5, 70))


def mutate_netx(src: Path, dst: Path, rng: np.random.Generator) -> str:
    """Copy a netx file and change one dataset of one block: delete it, replace it (``_netx_value``), or set
    a block / neuron type to another (unsupported, misspelled) kind. Returns what was done."""
    import h5py

    shutil.copyfile(src, dst)
    with h5py.File(dst, "a") as fh:
        blocks = sorted(fh["layer"].keys(), key=lambda k: int(k) if k.isdigit() else -1)
        block = fh["layer"][blocks[int(rng.integers(len(blocks)))]]
        key = NETX_KEYS[int(rng.integers(len(NETX_KEYS)))]
        if key in ("type", "neuron/type") and rng.random() < 0.6:
            pool = NETX_TYPES if key == "type" else NEURON_TYPES
            new, what = np.array([pool[int(rng.integers(len(pool)))]], "S10"), "kind"
        else:
            old = block[key][()] if key in block and isinstance(block[key], h5py.Dataset) else None
            what, new = ("deleted", None) if rng.random() < 0.25 else _netx_value(rng, old)
        try:
            if key in block:
                del block[key]
            if new is not None:
                block.create_dataset(key, data=new)
        except (TypeError, ValueError, KeyError):  # a path through a dataset: that block stays as changed
            what += " (partly)"
    return f"{block.name}/{key}: {what}"
