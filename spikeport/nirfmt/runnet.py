"""A run folder's deployable network, from whichever graph file is its source of truth: the netx file of a
run imported from lava-dl (``source.net``, read as netx builds it), ``model.nir``, or, for a trained
sigma-delta run (NIR has no sigma-delta node), the ``model.net`` that ``spikeport export RUN --netx`` wrote
with the run's metadata in its root attributes (:func:`read_written`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.errors import SpikeportError
from spikeport.files import runfolder

RUN_ATTRS = ("readout", "encoder", "dataset")  # root attributes of a spikeport-written netx file -> net.meta


def is_netx_run(run_dir: str | Path) -> bool:
    return (Path(run_dir) / runfolder.NETX_IMPORT).is_file()


def is_written_netx(path: str | Path) -> bool:
    """True for a netx file spikeport wrote with a run's metadata (a trained sigma-delta run's model.net)."""
    import h5py

    path = Path(path)
    if not path.is_file() or path.suffix != ".net":
        return False
    try:
        with h5py.File(path, "r") as fh:
            return "readout" in fh.attrs and "time_steps" in fh.attrs
    except OSError:
        return False


def graph_file(run_dir: str | Path) -> Path:
    """The graph file :func:`load_run` reads for ``run_dir``."""
    run_dir = Path(run_dir)
    if is_netx_run(run_dir):
        return run_dir / runfolder.NETX_SOURCE
    nir = run_dir / runfolder.MODEL_NIR
    if not nir.exists() and is_written_netx(run_dir / runfolder.MODEL_NETX):
        return run_dir / runfolder.MODEL_NETX
    return nir


def read_written(path: str | Path) -> LoihiNet:
    """A netx file spikeport wrote for a run (root attributes ``time_steps``, ``input_shape``, ``spike_exp``,
    ``readout``, ``encoder``, ``dataset``), read as netx builds it, with that metadata in ``net.meta``."""
    from spikeport.nirfmt import netx as rules
    from spikeport.nirfmt.netx_net import read
    from spikeport.nirfmt.netx_read import read_blocks

    _, attrs = read_blocks(path)
    try:
        steps = int(np.asarray(attrs["time_steps"]).reshape(()))
        shape = tuple(int(s) for s in np.asarray(attrs["input_shape"]).reshape(-1))
    except (KeyError, TypeError, ValueError):
        raise SpikeportError(f"{path}: root attributes 'time_steps' and 'input_shape' are needed") from None
    spike_exp = int(np.asarray(attrs.get("spike_exp", rules.SPIKE_EXP)).reshape(()))
    net, _ = read(path, steps, input_shape=shape if len(shape) == 3 else None, spike_exp=spike_exp)
    meta = {k: np.asarray(attrs[k]).reshape(()).item() for k in RUN_ATTRS if k in attrs}
    net.meta = {**{k: v.decode() if isinstance(v, bytes) else str(v) for k, v in meta.items()},
                "input_shape": list(shape)}
    return net


def load_run(run_dir: str | Path) -> LoihiNet:
    """The network every stage deploys for ``run_dir`` (a one-line error when its graph file is missing)."""
    run_dir = Path(run_dir)
    if is_netx_run(run_dir):
        from spikeport.nirfmt.netx_net import read_run

        if not (run_dir / runfolder.NETX_SOURCE).is_file():
            raise SpikeportError(f"{run_dir / runfolder.NETX_SOURCE}: file not found (the netx file this run was "
                                 "imported from)")
        return read_run(run_dir)
    path = graph_file(run_dir)
    if path.suffix == ".net":
        return read_written(path)
    from spikeport.nirfmt.load import load_nir

    if not path.exists():
        raise SpikeportError(f"{path}: file not found (run `spikeport export {run_dir}` first; a sigma-delta run: "
                             f"`spikeport export {run_dir} --netx`)")
    return load_nir(path)


def load_graph(target: str | Path) -> LoihiNet:
    """A run folder (:func:`load_run`), a netx file spikeport wrote for a run, or a ``.nir`` file."""
    target = Path(target)
    if target.is_dir():
        return load_run(target)
    if is_written_netx(target):
        return read_written(target)
    from spikeport.nirfmt.load import load_nir

    return load_nir(target)
