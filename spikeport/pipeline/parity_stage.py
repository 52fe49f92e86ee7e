"""``spikeport parity``: a reference (see :mod:`spikeport.pipeline.reference`) against the deployed
graph on one or more backends, spike by spike, in chunks sized to the memory budget.

Every backend is compared with the reference and, with two backends, with the other. The gate:

* exact reference (a checkpoint's integer forward): all spike mismatches <= ``max_mismatches``;
* float reference (an imported graph): backend-vs-backend mismatches <= ``max_mismatches`` and each
  backend's prediction agreement with the reference >= ``min_agreement``.

parity.json holds the result; ``parity_spikes.npz`` one sample's spikes of every layer and side (the
first divergence's, else sample 0).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.core.readout import classifies
from spikeport.deploy import emulator
from spikeport.errors import ParityFailure, SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.measure import parity as parity_mod
from spikeport.nirfmt import runnet
from spikeport.nirfmt.load import meta_value
from spikeport.pipeline import limits, streaming
from spikeport.pipeline.backends import parse_backends, run_backend
from spikeport.pipeline.inputs import check_samples
from spikeport.pipeline.reference import Reference, for_run

NO_LABELS = "no labels: agreement only"
Progress = Callable[[str, int, int], None]  # (side: "reference" or a backend, samples done, samples in all)


def parity(run_dir: str | Path, *, backend: str = "lava", samples: int | None = None,
           max_mismatches: int | None = 0, out: str | Path | None = None, timeout_s: float | None = None,
           shards: int = 1, inputs: str | Path | None = None, labels: str | Path | None = None,
           max_memory_gb: float | None = None, max_steps: int | None = None, reference: Reference | None = None,
           min_agreement: float | None = None, progress: Progress | None = None, cluster: str | None = None) -> dict:
    """Compare ``reference`` (default: the one the run folder needs, :func:`reference.for_run`) with each
    backend running ``RUN/model.nir`` (``netx``: ``RUN/model.net``); write parity.json and
    parity_outputs.npz. Raises :class:`ParityFailure` (after writing the report) when the gate fails.
    ``progress(side, done, total)`` follows the samples of each side; ``cluster`` (a Ray address) runs
    the backends' sample shards on a Ray cluster (:mod:`spikeport.deploy.cluster`)."""
    run_dir = Path(run_dir)
    fileio.refuse_pickle(run_dir)
    backends = parse_backends(backend)
    check_samples(samples)
    netx_run = runnet.is_netx_run(run_dir)
    netx_file = run_dir / (runfolder.NETX_SOURCE if netx_run else runfolder.MODEL_NETX)
    if "netx" in backends and not netx_file.is_file():
        raise SpikeportError(f"{netx_file}: file not found (run `spikeport export {run_dir} --netx` first)")
    net = runnet.load_run(run_dir)
    ref = reference or for_run(run_dir, net, inputs=inputs, labels=labels)
    sides, pairs = _sides(ref, backends)
    budget, plan = limits.Budget.make(max_memory_gb, max_steps), {}

    def _plan(n: int) -> None:  # before the inputs are encoded: refuse early, with the estimate
        plan["chunk"] = limits.plan_chunk(net, n, ["reference", *sides], budget, "parity")

    x_int, y = ref.inputs(net, samples, _plan)
    chunk = plan.get("chunk") or limits.plan_chunk(net, x_int.shape[1], ["reference", *sides], budget, "parity")

    def run(xs, b):
        last = getattr(ref, "last", None)
        if b == "netx" and last is not None and last[0] is xs:  # a netx run's reference is netx itself
            return last[1]
        return run_backend(net, xs, b, timeout_s=timeout_s, shards=shards, netx_file=netx_file, cluster=cluster,
                           netx_options=getattr(ref, "options", None))

    cp = streaming.parity_chunks(net, x_int, ref.run, sides, run, chunk, pairs, progress)
    result = _result(net, ref, cp, backends, pairs, y, x_int.shape[1], chunk, max_mismatches, shards, min_agreement)
    result["cluster"] = cluster
    if result["first_divergence"]:
        result["first_divergence"]["emulator_state"] = _emulator_state(net, x_int, result["first_divergence"])
    report_path = Path(out) if out else run_dir / runfolder.PARITY
    fileio.write_json(report_path, result)
    sample, kept = cp.sample_sides(result["first_divergence"])
    label = -1 if y is None else int(y[sample])
    save_spike_sample(report_path.with_name(runfolder.SPIKE_SAMPLE), [p.name for p in net.populations], sample,
                      label, kept, sliced=True)
    save_outputs(report_path.with_name(runfolder.PARITY_OUTPUTS), cp, y)
    if not result["passed"]:
        raise ParityFailure(_failure(run_dir, result))
    return result


def _sides(ref: Reference, backends: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The backends to run and the pairs compared spike by spike. An exact reference is compared with
    every backend (and the first two backends with each other). A float reference cannot be: the
    integer reference is then the emulator (spikeport's integer arithmetic), run besides the requested
    backends when needed, and every other backend is compared with it; the float reference's spikes
    are compared with the first backend's for information (``reference_spike_agreement``), not gated."""
    if ref.exact:
        pairs = [("reference", b) for b in backends]
        return backends, pairs + ([(backends[0], backends[1])] if len(backends) > 1 else [])
    others = [b for b in backends if b != "emulator"]
    run = ["emulator", *others]
    return run, [("reference", backends[0])] + [("emulator", b) for b in others]


def _result(net: LoihiNet, ref: Reference, cp: streaming.ChunkedParity, backends: list[str],
            pairs: list[tuple[str, str]], y, n: int, chunk: int, max_mismatches: int | None, shards: int,
            min_agreement: float | None) -> dict:
    """parity.json's content (see the module docstring for the gate). Without labels no accuracy is
    reported (None), only agreement."""
    acc = (lambda pred: None) if y is None else (lambda pred: parity_mod.accuracy(pred, y))  # noqa: E731
    classify = classifies(net)  # a regression output has values, not classes
    comparisons = []
    for b in backends:
        comparisons.append({"pair": f"reference-{b}", "backend": b, "backend_accuracy": acc(cp.preds[b]),
                            "prediction_agreement": parity_mod.agreement(cp.ref_pred, cp.preds[b]),
                            "samples_per_s": round(n / max(cp.seconds[b], 1e-9), 2)})
    spike_checks = []
    for a, b in pairs:
        row = {"pair": f"{a}-{b}", **cp.tallies[f"{a}-{b}"].result()}
        if a != "reference":
            row["prediction_agreement"] = parity_mod.agreement(cp.preds[a], cp.preds[b])
        spike_checks.append(row)
    for row in spike_checks:  # a regression output's values per step, beside its spikes
        if row["pair"] in cp.value_tallies and cp.value_tallies[row["pair"]].count:
            row["output_values"] = cp.value_tallies[row["pair"]].result()
    for c in comparisons:  # an exact reference's spike check belongs to its backend's row
        c.update(next((r for r in spike_checks if r["pair"] == c["pair"]), {}))
        if not classify:
            c["backend_accuracy"] = c["prediction_agreement"] = None
    comparisons += [r for r in spike_checks if not r["pair"].startswith("reference-")]
    measured = [c for c in comparisons if "spike_mismatches" in c and (ref.exact or c["pair"].split("-")[0] != "reference")]
    mismatches = int(sum(c["spike_mismatches"] for c in measured)) if measured else None
    value_mismatches = int(sum(c["output_values"]["value_mismatches"] for c in measured if "output_values" in c))
    first = next(({"pair": c["pair"], **c["first_divergence"]} for c in measured if c["first_divergence"]), None)
    agreements = [c["prediction_agreement"] for c in comparisons if "backend" in c and c["prediction_agreement"] is not None]
    agreement = min(agreements) if agreements else None
    main = comparisons[0]
    result = {
        "backend": ",".join(backends), "samples": int(n), "network": net.describe(), "time_steps": net.time_steps,
        "dataset": ref.dataset, "reference": ref.describe, "labels": "given" if y is not None else NO_LABELS,
        "float_accuracy": acc(cp.float_pred), "reference_accuracy": acc(cp.ref_pred), "chunk_samples": chunk,
        "backend_accuracy": main["backend_accuracy"],
        "prediction_agreement": main["prediction_agreement"] if ref.exact else agreement,
        "spike_mismatches": mismatches, "spike_pairs": [c["pair"] for c in measured],
        "per_layer": measured[0]["per_layer"] if measured else [], "first_divergence": first,
        "samples_per_s": {c["backend"]: c["samples_per_s"] for c in comparisons if "backend" in c},
        "comparisons": comparisons, "max_mismatches": max_mismatches, "shards": shards, **ref.report(),
        "graph_notes": graph_notes(net),
        "output": _output_kind(net),
        "payload_mismatches": int(sum(r.get("payload_mismatches", 0) for c in measured for r in c["per_layer"])),
    }
    if not classify:
        result["float_accuracy"] = result["reference_accuracy"] = None
    if net.regression:
        result["output_values"] = {c["pair"]: c["output_values"] for c in measured if "output_values" in c}
        result["value_mismatches"] = value_mismatches
    if mismatches is None:
        result["spike_check"] = ("not measured: the emulator is the integer reference of an imported run; "
                                 "add --backend lava (or netx) to compare spikes")
    passed = max_mismatches is None or not mismatches or mismatches <= max_mismatches
    passed = passed and (max_mismatches is None or value_mismatches <= max_mismatches)
    if not ref.exact:
        need = ref.min_agreement if min_agreement is None else min_agreement
        result["min_agreement"] = need
        result["integer_reference"] = "emulator (spikeport's integer arithmetic, core.loihi)"
        float_vs = cp.tallies[f"reference-{backends[0]}"].result()["per_layer"]
        result["reference_spike_agreement"] = [1.0 - r["mismatches"] / max(1, r["neurons"] * net.time_steps * n)
                                               for r in float_vs]
        passed = passed and (need is None or agreement >= need)
    result["passed"] = bool(passed)
    return result


def _output_kind(net: LoihiNet) -> str:
    """What the network's output is, as parity.json and the report say it."""
    if not net.regression:
        return "spikes (classes)"
    if not classifies(net):
        return "values per step (regression)"
    if net.meta.get("readout") == "last_value":
        return "the sigma output's value at the last step (last_value readout, classes)"
    return "the output integrator's voltage at the last step (membrane readout, classes)"


def save_outputs(path: Path, cp: streaming.ChunkedParity, y) -> None:
    """parity_outputs.npz (atomic, no pickled objects): ``sides`` [S] str and, per side, ``{side}`` [B,
    n_out]: output spike counts per sample (integer sides: the reference, each backend) or the float
    model's summed readout; ``labels`` [B] when given. Hold them against your own simulator."""
    arrays = {"sides": np.array(list(cp.outputs), dtype=str),
              **{side.replace(" ", "_"): out for side, out in cp.outputs.items()}}
    if y is not None:
        arrays["labels"] = np.asarray(y, np.int64)
    fileio.write_npz(path, arrays, compressed=True)


def graph_notes(net: LoihiNet) -> list[str]:
    """What the graph says other NIR tools cannot reproduce (a KLIF floor, ...), for the report."""
    note = meta_value(net, "floor_v_warning")
    return [str(note)] if note else []


def _failure(run_dir: Path, result: dict) -> str:
    """One line: each part of the gate that failed, with where the spikes first diverged."""
    d, allowed, n = result["first_divergence"], result["max_mismatches"], result["spike_mismatches"]
    reasons = []
    if allowed is not None and n is not None and n > allowed:
        reason = f"{n} spike mismatches (allowed {allowed})"
        if d:
            reason += (f", first divergence {d['pair']} at layer {d['layer']}, sample {d['sample']}, "
                       f"step {d['step']}, neuron {d['neuron']}")
        reasons.append(reason)
    nv = result.get("value_mismatches")
    if allowed is not None and nv and nv > allowed:
        reasons.append(f"{nv} output values differ (allowed {allowed})")
    need = result.get("min_agreement")
    if need is not None and result["prediction_agreement"] < need:
        reason = (f"prediction agreement with the float reference {result['prediction_agreement']:.2%} (required "
                  f"{need:.2%}; --min-agreement) on imported run {run_dir}")
        if result.get("conventions_hint"):
            reason += f" ({result['conventions_hint']})"
        reasons.append(reason)
    return "parity failed: " + "; ".join(reasons)


def save_spike_sample(path: Path, names: list[str], sample: int, label: int,
                      sides: dict[str, list[np.ndarray]], sliced: bool = False) -> None:
    """Write one sample's spikes of every layer, for each side of a parity run, to ``path`` (atomic).

    ``sides``: ``{"reference" | backend: [T, B, N_i] spikes per layer}`` (``sliced``: already the
    sample's own ``[T, N_i]``). The .npz holds no pickled
    objects (load it with ``allow_pickle=False``): ``layers`` [L] str, ``sides`` [S] str, ``sample``
    (index in the parity batch) and ``label`` int scalars (-1: no labels), and ``{side}_{i}`` [T, N_i]
    bool for each side and layer index ``i``.
    """
    arrays = {"layers": np.array(names, dtype=str), "sides": np.array(list(sides), dtype=str),
              "sample": np.int64(sample), "label": np.int64(label)}
    for side, spikes in sides.items():
        for i, s in enumerate(spikes):
            s = np.asarray(s) if sliced else np.asarray(s)[:, sample]
            arrays[f"{side}_{i}"] = s if s.dtype != bool and s.dtype.kind in "iu" else s != 0
    fileio.write_npz(path, arrays, compressed=True)


def _emulator_state(net: LoihiNet, x_int: np.ndarray, d: dict) -> dict:
    """The emulator's integer u, v (sigma-delta: sigma, act) of the diverging neuron at the diverging step
    (Lava's state is not recorded during streaming; the emulator equals Lava wherever spikes agree)."""
    one = x_int[:, d["sample"]: d["sample"] + 1]
    run = emulator.run(net, one, record_states=True)
    u, v = run.states[d["layer_index"]]
    step, n = d["step"], d["neuron"]
    a, b = ("sigma", "act") if net.populations[d["layer_index"]].sd is not None else ("u", "v")
    return {a: int(u[step, 0, n]), b: int(v[step, 0, n]),
            f"{a}_prev": int(u[step - 1, 0, n]) if step else 0, f"{b}_prev": int(v[step - 1, 0, n]) if step else 0}
