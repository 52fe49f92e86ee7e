"""The Xylo hardware specification file (``model.xylo.json``), written by ``spikeport export RUN --xylo`` and
``spikeport import GRAPH --target xylo-audio2``, read (validated) by every Xylo stage.

One JSON object (documented in docs/xylo.md)::

    {"format": "spikeport-xylo-spec", "version": 1, "chip": "Xylo Audio 2 (SYNS61201)",
     "specification": {weights_in, weights_rec, weights_out, weight_shift_in, weight_shift_rec,
                       weight_shift_out, dash_mem, dash_syn, dash_syn_2, dash_mem_out, dash_syn_out,
                       threshold, threshold_out, bias, bias_out, dt},
     "spikeport": {"time_steps": T, "readout": "spike_count", ...}}

``specification`` holds exactly the keywords of Rockpool's ``XyloSim.from_specification`` (integer
lists; shapes in :mod:`spikeport.core.xylo_net`), so ``XyloSim.from_specification(**{k: np.array(v)
for k, v in doc["specification"].items()})`` builds it. ``spikeport`` holds what running it needs
besides (steps per sample, readout, dataset or input files) and where it came from.

Reading checks the format, every key's type and shape, and refuses unknown keys; the chip limits are
checked by the stage that runs it (:meth:`XyloNet.violations`), so a file can be read to be reported on.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from spikeport.core.xylo_net import SPEC_KEYS, XyloNet
from spikeport.errors import SpikeportError
from spikeport.files import fileio

FORMAT = "spikeport-xylo-spec"
VERSION = 1
CHIP = "Xylo Audio 2 (SYNS61201)"
_INTS = ("weight_shift_in", "weight_shift_rec", "weight_shift_out")
_NDIM = {"weights_in": 3, "weights_rec": 3, "weights_out": 2}
MAX_BYTES = 64 << 20  # a full 16-1000-8 chip with every weight is about 12 MB of JSON


def write(path: str | Path, net: XyloNet, info: dict[str, Any]) -> Path:
    """Write ``net`` (and ``info``: spikeport's own fields besides ``time_steps``) to ``path`` atomically."""
    spec = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in net.spec().items()}
    doc = {"format": FORMAT, "version": VERSION, "chip": CHIP, "specification": spec,
           "spikeport": {"time_steps": int(net.time_steps), **{k: v for k, v in info.items() if k != "time_steps"},
                         "network": net.describe()}}
    fileio.write_json(path, doc)
    return Path(path)


def _array(path: Path, key: str, val: Any, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(val)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype.kind not in "iu" or arr.ndim != ndim:
        raise SpikeportError(f"{path}: specification.{key} must be a {ndim}-dimensional list of integers")
    return arr.astype(np.int64)


def read(path: str | Path) -> XyloNet:
    """The validated :class:`XyloNet` in ``path`` (its ``meta``: the file's ``spikeport`` object)."""
    path = Path(path)
    fileio.refuse_pickle(path)
    if not path.is_file():
        raise SpikeportError(f"{path}: file not found")
    if path.stat().st_size > MAX_BYTES:
        raise SpikeportError(f"{path}: larger than {MAX_BYTES >> 20} MiB; not a Xylo specification")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise SpikeportError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SpikeportError(f"{path}: field 'format' must be {FORMAT!r}")
    if doc.get("version") != VERSION or isinstance(doc.get("version"), bool):
        raise SpikeportError(f"{path}: field 'version' must be {VERSION}")
    spec, info = doc.get("specification"), doc.get("spikeport")
    if not isinstance(spec, dict) or not isinstance(info, dict):
        raise SpikeportError(f"{path}: fields 'specification' and 'spikeport' must be objects")
    unknown = sorted(set(spec) - set(SPEC_KEYS) - {"dt"})
    missing = [k for k in SPEC_KEYS if k not in spec]
    if unknown or missing:
        raise SpikeportError(f"{path}: specification has unknown keys {unknown[:3]} / lacks {missing[:3]}")
    kw: dict[str, Any] = {}
    for key in SPEC_KEYS:
        if key in _INTS:
            if not isinstance(spec[key], int) or isinstance(spec[key], bool):
                raise SpikeportError(f"{path}: specification.{key} must be an integer")
            kw[key] = spec[key]
        else:
            kw[key] = _array(path, key, spec[key], _NDIM.get(key, 1))
    dt = spec.get("dt", 1e-3)
    if not isinstance(dt, (int, float)) or isinstance(dt, bool) or not 0 < dt < 1e3:
        raise SpikeportError(f"{path}: specification.dt must be a positive number of seconds")
    steps = info.get("time_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 10**6:
        raise SpikeportError(f"{path}: spikeport.time_steps must be a positive integer")
    try:
        return XyloNet(**kw, time_steps=steps, dt=float(dt), meta=dict(info))
    except ValueError as err:
        raise SpikeportError(f"{path}: {err}") from None
