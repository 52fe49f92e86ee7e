"""``spikeport export RUN --xylo``: a run trained with ``target = "xylo-audio2"`` -> ``RUN/model.xylo.json``, the
Xylo Audio 2 hardware specification (weights, shifts, decays, thresholds; :mod:`spikeport.nirfmt.xylo_spec`),
checked against every chip limit before it is written."""
from __future__ import annotations

from pathlib import Path

from spikeport.errors import SpikeportError
from spikeport.files import runfolder
from spikeport.nirfmt import xylo_spec


def export_xylo(run_dir: str | Path) -> Path:
    """Write ``run_dir/model.xylo.json`` from the run's checkpoint; returns its path."""
    from spikeport.train import checkpoint

    run_dir = Path(run_dir)
    if runfolder.is_imported(run_dir) and runfolder.is_xylo(run_dir):
        raise SpikeportError(f"{run_dir}: imported onto Xylo; its specification is {runfolder.MODEL_XYLO}, written by "
                             "`spikeport import --target xylo-audio2`")
    model, cfg, raw = checkpoint.load(run_dir)
    if cfg.target != "xylo-audio2":
        raise SpikeportError(f"{run_dir}: trained for Loihi (target {cfg.target!r}); --xylo exports a run trained "
                             "with target = \"xylo-audio2\"")
    net = model.to_xylo()
    bad = net.violations()
    if bad:
        raise SpikeportError(f"{run_dir}: does not fit Xylo Audio 2: " + "; ".join(bad))
    info = {"readout": "spike_count", "dataset": cfg.data, "data_dir": cfg.data_dir, "encoder": cfg.encoder,
            "seed": cfg.seed, "input_shape": list(raw.get("input_shape") or [raw["n_inputs"]]),
            "n_classes": raw["n_classes"], "source": f"spikeport train, target xylo-audio2 ({runfolder.WEIGHTS})",
            "dt_source": "ASSUMPTION: a trained network has no physical step; spikeport writes 1 ms (Rockpool's "
                         "XyloSim default)"}
    return xylo_spec.write(run_dir / runfolder.MODEL_XYLO, net, info)
