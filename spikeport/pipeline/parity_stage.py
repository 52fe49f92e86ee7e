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
from spikeport.deploy import emulator
from spikeport.errors import ParityFailure, SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.measure import parity as parity_mod
from spikeport.nirfmt.load import load_nir
from spikeport.pipeline import limits, streaming
from spikeport.pipeline.backends import parse_backends, run_backend
from spikeport.pipeline.inputs import check_samples
from spikeport.pipeline.reference import Reference, for_run

Progress = Callable[[str, int, int], None]  # (side: "reference" or a backend, samples done, samples in all)


def parity(run_dir: str | Path, *, backend: str = "lava", samples: int | None = None,
           max_mismatches: int | None = 0, out: str | Path | None = None, timeout_s: float | None = None,
           shards: int = 1, inputs: str | Path | None = None, labels: str | Path | None = None,
           max_memory_gb: float | None = None, max_steps: int | None = None, reference: Reference | None = None,
           min_agreement: float | None = None, progress: Progress | None = None) -> dict:
    """Compare ``reference`` (default: the one the run folder needs, :func:`reference.for_run`) with each
    backend running ``RUN/model.nir``; write parity.json. Raises :class:`ParityFailure` (after writing
    the report) when the gate fails. ``progress(side, done, total)`` follows the samples of each side."""
    run_dir = Path(run_dir)
    fileio.refuse_pickle(run_dir)
    backends = parse_backends(backend)
    check_samples(samples)
    nir_path = run_dir / runfolder.MODEL_NIR
    if not nir_path.exists():
        raise SpikeportError(f"{nir_path}: file not found (run `spikeport export {run_dir}` first)")
    net = load_nir(nir_path)
    ref = reference or for_run(run_dir, net, inputs=inputs, labels=labels)
    budget, plan = limits.Budget.make(max_memory_gb, max_steps), {}

    def _plan(n: int) -> None:  # before the inputs are encoded: refuse early, with the estimate
        plan["chunk"] = limits.plan_chunk(net, n, ["reference", *backends], budget, "parity")

    x_int, y = ref.inputs(net, samples, _plan)
    chunk = plan.get("chunk") or limits.plan_chunk(net, x_int.shape[1], ["reference", *backends], budget, "parity")
    cp = streaming.parity_chunks(net, x_int, ref.run, backends, lambda xs, b: run_backend(
        net, xs, b, timeout_s=timeout_s, shards=shards), chunk, progress)
    result = _result(net, ref, cp, backends, y, x_int.shape[1], chunk, max_mismatches, shards, min_agreement)
    if result["first_divergence"]:
        result["first_divergence"]["emulator_state"] = _emulator_state(net, x_int, result["first_divergence"])
    report_path = Path(out) if out else run_dir / runfolder.PARITY
    fileio.write_json(report_path, result)
    sample, sides = cp.sample_sides(result["first_divergence"])
    label = -1 if y is None else int(y[sample])
    save_spike_sample(report_path.with_name(runfolder.SPIKE_SAMPLE), [p.name for p in net.populations], sample,
                      label, sides, sliced=True)
    if not result["passed"]:
        raise ParityFailure(_failure(run_dir, result))
    return result


def _result(net: LoihiNet, ref: Reference, cp: streaming.ChunkedParity, backends: list[str], y, n: int,
            chunk: int, max_mismatches: int | None, shards: int, min_agreement: float | None) -> dict:
    """parity.json's content (see the module docstring for the gate)."""
    labels = cp.ref_pred if y is None else y  # float references without labels: agreement is what counts
    comparisons = []
    for b in backends:
        pred = cp.preds[b]
        comparisons.append({"pair": f"reference-{b}", "backend": b, "backend_accuracy": parity_mod.accuracy(pred, labels),
                            "prediction_agreement": parity_mod.agreement(cp.ref_pred, pred),
                            "samples_per_s": round(n / max(cp.seconds[b], 1e-9), 2),
                            **cp.tallies[f"reference-{b}"].result()})
    between = None
    if len(backends) > 1:
        ba, bb = backends[:2]
        between = {"pair": f"{ba}-{bb}", "prediction_agreement": parity_mod.agreement(cp.preds[ba], cp.preds[bb]),
                   **cp.tallies[f"{ba}-{bb}"].result()}
        comparisons.append(between)
    main = comparisons[0]
    gated = comparisons if ref.exact else [c for c in [between] if c]
    mismatches = int(sum(c["spike_mismatches"] for c in gated))
    first = next(({"pair": c["pair"], **c["first_divergence"]} for c in gated if c["first_divergence"]), None)
    agreement = min(c["prediction_agreement"] for c in comparisons if "backend" in c)
    result = {
        "backend": ",".join(backends), "samples": int(n), "network": net.describe(), "time_steps": net.time_steps,
        "dataset": ref.dataset, "reference": ref.describe,
        "float_accuracy": parity_mod.accuracy(cp.float_pred, labels),
        "reference_accuracy": parity_mod.accuracy(cp.ref_pred, labels), "chunk_samples": chunk,
        "backend_accuracy": main["backend_accuracy"],
        "prediction_agreement": main["prediction_agreement"] if ref.exact else agreement,
        "spike_mismatches": mismatches, "per_layer": main["per_layer"], "first_divergence": first,
        "samples_per_s": {c["backend"]: c["samples_per_s"] for c in comparisons if "backend" in c},
        "comparisons": comparisons, "max_mismatches": max_mismatches, "shards": shards, **ref.report(),
        "graph_notes": graph_notes(net),
    }
    passed = max_mismatches is None or mismatches <= max_mismatches
    if not ref.exact:
        need = ref.min_agreement if min_agreement is None else min_agreement
        result["min_agreement"] = need
        result["reference_spike_agreement"] = [
            1.0 - r["mismatches"] / max(1, r["neurons"] * net.time_steps * n) for r in main["per_layer"]]
        passed = passed and (need is None or agreement >= need)
    result["passed"] = bool(passed)
    return result


def graph_notes(net: LoihiNet) -> list[str]:
    """What the graph says other NIR tools cannot reproduce (a KLIF floor, ...), for the report."""
    note = net.meta.get("floor_v_warning")
    if isinstance(note, bytes):
        note = note.decode()
    if isinstance(note, np.ndarray):
        note = str(note.item()) if note.shape == () else None
    return [str(note)] if note else []


def _failure(run_dir: Path, result: dict) -> str:
    d, allowed = result["first_divergence"], result["max_mismatches"]
    msg = f"parity failed: {result['spike_mismatches']} spike mismatches (allowed {allowed})"
    if d:
        msg += (f"; first divergence {d['pair']} at layer {d['layer']}, sample {d['sample']}, step {d['step']}, "
                f"neuron {d['neuron']}")
    if "min_agreement" in result:
        msg += (f"; prediction agreement with the float reference {result['prediction_agreement']:.2%} "
                f"(required {result['min_agreement']:.2%}) on imported run {run_dir}")
        if result.get("conventions_hint"):
            msg += f" ({result['conventions_hint']})"
    return msg


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
            arrays[f"{side}_{i}"] = (np.asarray(s) if sliced else np.asarray(s)[:, sample]) != 0
    fileio.write_npz(path, arrays, compressed=True)


def _emulator_state(net: LoihiNet, x_int: np.ndarray, d: dict) -> dict:
    """The emulator's integer u, v of the diverging neuron at the diverging step (Lava's state is not
    recorded during streaming; the emulator equals Lava wherever spikes agree)."""
    one = x_int[:, d["sample"]: d["sample"] + 1]
    run = emulator.run(net, one, record_states=True)
    u, v = run.states[d["layer_index"]]
    step, n = d["step"], d["neuron"]
    return {"u": int(u[step, 0, n]), "v": int(v[step, 0, n]),
            "u_prev": int(u[step - 1, 0, n]) if step else 0, "v_prev": int(v[step - 1, 0, n]) if step else 0}
