"""``spikeport energy`` of a Xylo run: SynOps and neuron updates counted on the emulator's spikes, Xylo Audio 2
resources, and the chip-level energy estimate (:mod:`spikeport.measure.xylo_energy`), written to
``xylo_energy.json`` (per inference = per sample)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from spikeport.deploy import xylo_emulator
from spikeport.files import fileio, runfolder
from spikeport.measure import xylo_energy
from spikeport.pipeline.inputs import check_samples
from spikeport.pipeline.xylo_parity import load_net, reference_for


def energy(run_dir: str | Path, *, samples: int | None = 1000, inputs: str | Path | None = None,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Count, map and price a Xylo run on its first ``samples`` inputs; write and return xylo_energy.json."""
    run_dir = Path(run_dir)
    check_samples(samples)
    net = load_net(run_dir)
    x, _ = reference_for(run_dir, net, inputs, None).inputs(samples)
    run = xylo_emulator.run(net, x)
    if progress:
        progress(1, 1)
    profile = xylo_energy.load_profile()
    result = {"chip": "xylo-audio2", "network": net.describe(), "time_steps": net.time_steps,
              "samples": int(x.shape[1]), **xylo_energy.count_ops(net, x, run.spikes[0]),
              "resources": xylo_energy.resources_used(net),
              "energy": xylo_energy.estimate(profile, net.time_steps, net.dt, net.meta.get("dt_source"))}
    fileio.write_json(run_dir / runfolder.XYLO_ENERGY, result)
    return result
