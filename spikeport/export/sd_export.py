"""A trained sigma-delta run (``spikeport train --neuron sigma-delta``) -> ``model.net``: lava-dl netx SDNN
blocks (:mod:`spikeport.export.netx_export`) holding exactly the checkpoint's integers
(:meth:`spikeport.train.sigma_delta.SigmaDeltaNet.loihi_net`), with the run's readout, encoder and dataset
in the file's root attributes (netx ignores them; :func:`spikeport.nirfmt.runnet.read_written` reads them).

NIR has no sigma-delta node (NIR 1.0: no graded, change-sending neuron), so such a run has no ``model.nir``:
``spikeport export RUN`` refuses in one line and ``--netx`` writes the netx file alone; every later stage
(deploy, parity, energy, report) reads ``model.net``.
"""
from __future__ import annotations

from pathlib import Path

from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder

NO_NIR = ("a sigma-delta network has no NIR node (NIR 1.0 has no neuron that sends graded changes); "
          "export it with --netx (lava-dl netx SDNN blocks, Loihi 2)")


def is_sigma_delta(run_dir: str | Path) -> bool:
    """True for a run folder whose checkpoint is a sigma-delta network (its config.json says so)."""
    path = Path(run_dir) / runfolder.CONFIG
    if not path.is_file():
        return False
    raw = fileio.read_json(path)
    cfg = raw.get("config") if isinstance(raw, dict) else None
    return isinstance(cfg, dict) and cfg.get("neuron") == "sigma-delta"


def export_sigma_delta(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``run_dir``'s sigma-delta checkpoint as ``model.net`` (or ``out``); returns the path."""
    from spikeport.export.netx_export import write_netx
    from spikeport.train import checkpoint
    from spikeport.train.sigma_delta import READOUT

    model, cfg, _ = checkpoint.load(run_dir)
    if cfg.neuron != "sigma-delta":
        raise SpikeportError(f"{run_dir}: not a sigma-delta run")
    meta = {"readout": READOUT, "encoder": cfg.encoder, "dataset": cfg.data}
    net = model.loihi_net(cfg.time_steps, meta)
    path = Path(out) if out else Path(run_dir) / runfolder.MODEL_NETX
    return write_netx(net, path, attrs=meta)


def export_lines(run_dir: str | Path, out: str | Path | None, *, netx: bool, onnx: bool) -> list[str]:
    """``spikeport export RUN`` of a sigma-delta run: write model.net (``--netx`` is required: no NIR node,
    no ONNX); the lines to print."""
    from spikeport.export.netx_export import written_accuracy

    if not netx or onnx:
        raise SpikeportError(f"{run_dir}: {NO_NIR}" + ("; ONNX export is for LIF runs" if onnx else ""))
    return [f"wrote {export_sigma_delta(run_dir, out)}", written_accuracy(run_dir)]
