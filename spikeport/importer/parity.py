"""Parity for imported runs: the producer's float reference against the deployed integer network.

An imported run has no checkpoint; its reference side is the float simulator
(:func:`spikeport.importer.simulate.simulate`) running ``source.nir`` with the producer's conventions
and dt recorded in ``import.json``. The backends (emulator, Lava) run ``model.nir``. Quantization makes
float and integer spikes differ slightly, so the gate is different from a trained run's:

* backend against backend (emulator vs Lava) must agree spike for spike (``max_mismatches``);
* each backend must predict the float reference's class on at least ``min_agreement`` of the samples.

parity.json carries the keys of a trained run's report (``reference`` = the float reference here,
``spike_mismatches`` = backend-vs-backend mismatches) so ``spikeport report`` works on it. Without
labels, the float reference's predictions stand in for them (said in ``labels``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport import fileio
from spikeport.deploy.nir_load import load_nir
from spikeport.errors import ParityFailure, SpikeportError
from spikeport.importer import runio
from spikeport.importer.run import load_source, reference
from spikeport.measure import parity as parity_mod
from spikeport.measure.readout import predict

MIN_AGREEMENT = 0.99


def parity_imported(run_dir: str | Path, *, backend: str = "lava", samples: int | None = None,
                    max_mismatches: int | None = 0, min_agreement: float = MIN_AGREEMENT,
                    out: str | Path | None = None, timeout_s: float | None = None,
                    inputs: str | Path | None = None, labels: str | Path | None = None) -> dict:
    """Float reference vs backends on the run's inputs (see module docstring); writes parity.json."""
    from spikeport.workflow import check_samples, parse_backends, run_backend

    run_dir = Path(run_dir)
    backends = parse_backends(backend)
    check_samples(samples)
    net = load_nir(run_dir / "model.nir")
    fg, prod, dt, info = load_source(run_dir)
    x_int, y, x = runio.run_inputs(net, run_dir / "model.nir", inputs, labels, samples)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(net.meta.get("source_layers", [])).ravel()]
    if len(names) != len(net.populations):
        raise SpikeportError(f"{run_dir / 'model.nir'}: metadata 'source_layers' does not match its layers")
    ref, ref_pred = reference(fg, prod, dt, x, names)
    label_note = "given"
    if y is None:
        y, label_note = ref_pred, "float reference predictions (no labels given)"
    pops = [p.name for p in net.populations]
    runs = {b: run_backend(net, x_int, b, timeout_s=timeout_s) for b in backends}
    comparisons = []
    for b, run in runs.items():
        pred = predict(run.spikes[-1], net.meta)
        comparisons.append({"pair": f"reference-{b}", "backend": b, "backend_accuracy": parity_mod.accuracy(pred, y),
                            "prediction_agreement": parity_mod.agreement(ref_pred, pred),
                            "samples_per_s": round(run.samples_per_s, 2), **parity_mod.compare(ref, run.spikes, pops)})
    between = None
    if len(runs) > 1:
        (ba, ra), (bb, rb) = list(runs.items())[:2]
        between = {"pair": f"{ba}-{bb}", "prediction_agreement": parity_mod.agreement(
            predict(ra.spikes[-1], net.meta), predict(rb.spikes[-1], net.meta)),
            **parity_mod.compare(ra.spikes, rb.spikes, pops)}
        comparisons.append(between)
    main = comparisons[0]
    worst = min(c["prediction_agreement"] for c in comparisons if "backend" in c)
    mismatches = between["spike_mismatches"] if between else 0
    result = {
        "backend": ",".join(backends), "samples": int(x.shape[1]), "network": net.describe(),
        "time_steps": net.time_steps, "dataset": f"imported from {prod.name} (dt = {dt:g} s)", "imported": True,
        "reference": f"float simulation of {runio.SOURCE} with {prod.name}'s conventions", "labels": label_note,
        "float_accuracy": parity_mod.accuracy(ref_pred, y), "reference_accuracy": parity_mod.accuracy(ref_pred, y),
        "backend_accuracy": main["backend_accuracy"], "prediction_agreement": worst,
        "spike_mismatches": int(mismatches), "per_layer": main["per_layer"],
        "first_divergence": None if not between or not between["first_divergence"] else
        {"pair": between["pair"], **between["first_divergence"]},
        "reference_spike_agreement": [1.0 - r["mismatches"] / max(1, r["neurons"] * net.time_steps * x.shape[1])
                                      for r in main["per_layer"]],
        "samples_per_s": {c["backend"]: c["samples_per_s"] for c in comparisons if "backend" in c},
        "comparisons": comparisons, "max_mismatches": max_mismatches, "min_agreement": min_agreement,
        "approximations": info.get("approximations", []),
    }
    result["passed"] = bool((max_mismatches is None or mismatches <= max_mismatches) and worst >= min_agreement)
    fileio.write_json(Path(out) if out else run_dir / "parity.json", result)
    if not result["passed"]:
        raise ParityFailure(f"parity failed on imported run {run_dir}: backend mismatches {mismatches} (allowed "
                            f"{max_mismatches}), prediction agreement with the float reference {worst:.2%} "
                            f"(required {min_agreement:.2%})")
    return result
