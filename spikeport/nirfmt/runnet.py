"""A run folder's deployable network, from whichever graph file is its source of truth: the netx file of a
run imported from lava-dl (``source.net``, read as netx builds it), else ``model.nir``."""
from __future__ import annotations

from pathlib import Path

from spikeport.core.net import LoihiNet
from spikeport.errors import SpikeportError
from spikeport.files import runfolder


def is_netx_run(run_dir: str | Path) -> bool:
    return (Path(run_dir) / runfolder.NETX_IMPORT).is_file()


def load_run(run_dir: str | Path) -> LoihiNet:
    """The network every stage deploys for ``run_dir`` (a one-line error when its graph file is missing)."""
    run_dir = Path(run_dir)
    if is_netx_run(run_dir):
        from spikeport.nirfmt.netx_net import read_run

        if not (run_dir / runfolder.NETX_SOURCE).is_file():
            raise SpikeportError(f"{run_dir / runfolder.NETX_SOURCE}: file not found (the netx file this run was "
                                 "imported from)")
        return read_run(run_dir)
    from spikeport.nirfmt.load import load_nir

    path = run_dir / runfolder.MODEL_NIR
    if not path.exists():
        raise SpikeportError(f"{path}: file not found (run `spikeport export {run_dir}` first)")
    return load_nir(path)
