"""``spikeport import GRAPH.nir --target xylo-audio2``: a peer's NIR graph onto SynSense Xylo Audio 2.

The graph must be what Xylo holds: ``input -> dense -> spiking layer (optionally recurrent: a dense map
back onto itself) -> dense -> spiking layer -> output``, at most 16 inputs, 1000 hidden and 8 output
neurons. It is read with the producer's conventions (:mod:`spikeport.importer.conventions`) into two float
layers in the Loihi-order form of :mod:`spikeport.importer.lower` (``u = beta_syn u + M x``,
``v = beta_mem v + u + bias``, thresholds folded into the weights), then put into Xylo's order
``i = a (i + W x)``: ``W = M / a`` with ``a = 1 - 2**-dash``, the bit-shift decay nearest ``beta_syn``.

Exact where Xylo's arithmetic is the producer's; otherwise ``--allow-approx`` applies the change and
lists it in import.json (as for Loihi). Xylo-specific items:

* decays: exact when the producer's factor is 1 - 2**-dash; else the nearest dash (in time constant; the
  mapping Rockpool's own Xylo mapper uses, dash = log2(tau / dt)) — Rockpool's float LIFTorch decays by
  exp(-dt/tau), not 1 - dt/tau, so a Rockpool graph's decays are always listed;
* reset: Xylo subtracts the threshold (a reset-to-zero producer is listed);
* spikes per step: hidden neurons emit up to 31 (a one-spike producer is listed; a multi-spike producer's cap
  is noted, as saturation is), output neurons one (a multi-spike producer's output layer is listed);
* threshold: Xylo fires at v >= threshold; a ``>`` producer is exact on the integer grid (threshold + 1);
* a constant current into a synapse (a bias of the dense map): Xylo has none; applied to v as the bias it
  settles to (listed). A layer without a synaptic current (LIF, IF): Xylo's current always persists at least
  a step (dash >= 1; listed).

Inputs (``--inputs``) must be event counts, integers 0..15 per channel and step (Xylo's input). The float
reference of parity is the producer's own float simulation (:class:`XyloImportReference`).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from spikeport.core import xylo
from spikeport.core.xylo_net import XyloNet, simulate
from spikeport.core.xylo_quant import quantize_rnn
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.importer import conventions, lower, runio
from spikeport.importer.reference import MIN_AGREEMENT
from spikeport.importer.run import _check_dt, load_source, reference, timing_check
from spikeport.nirfmt import xylo_spec
from spikeport.nirfmt.flat import flat_graph, read_any

TARGET = "xylo-audio2"


def _decay(ctx: list, node: str, what: str, beta: float, allow_zero: bool = False) -> tuple[int, float]:
    """(dash, Xylo factor) for a float decay factor ``beta``; records the change when it is not exact."""
    if beta <= 0.0 and not allow_zero:
        ctx.append({"node": node, "issue": f"no {what} (factor 0): Xylo's synaptic current always persists a step",
                    "change": "dash 1 (factor 0.5), the input weights doubled so the first step carries them"})
        return 1, 0.5
    dash = int(xylo.dash_from_factor(beta))
    a = float(xylo.decay_factor(dash))
    if abs(a - beta) > 1e-6:  # float32 parameters (a peer's taus) carry ~1e-8 of rounding
        ctx.append({"node": node, "issue": f"{what} factor {beta:.6g} is not a bit-shift decay",
                    "change": f"dash {dash}: factor 1 - 2**-{dash} = {a:.6g} (nearest in time constant)"})
    return dash, a


def _layer(ctx: list, notes: list, plan: lower.LayerPlan, prod: conventions.Producer, output: bool) -> dict:
    """Xylo parameters of one lowered layer (float, Xylo order) and its listed changes."""
    if plan.conn.kind != "dense":
        raise SpikeportError(f"{plan.name}: a {plan.conn.kind} map cannot be expressed on Xylo (dense weights only)")
    if output and plan.recurrent is not None:
        raise SpikeportError(f"{plan.name}: Xylo's output neurons cannot be recurrent")
    dash_syn, a_syn = _decay(ctx, plan.name, "synaptic decay", plan.beta_syn)
    dash_mem, _ = _decay(ctx, plan.name, "membrane decay", plan.beta_mem, allow_zero=True)
    bias = np.asarray(plan.bias, np.float64).copy()
    if plan.current is not None:
        settle = a_syn / (1.0 - a_syn)
        ctx.append({"node": plan.name, "issue": "a constant input current (bias) into the synapse: Xylo has no "
                    "always-on input", "change": f"applied to the membrane as current x {settle:.4g} (its settled "
                    "synaptic value) from step 0"})
        bias = bias + np.asarray(plan.current, np.float64) * settle
    if prod.reset == "zero":
        ctx.append({"node": plan.name, "issue": "resets to zero", "change": "Xylo subtracts the threshold"})
    if output and prod.multi_spike:
        ctx.append({"node": plan.name, "issue": f"{prod.name}'s output neurons emit several spikes per step",
                    "change": "at most one (Xylo's output neurons)"})
    elif not output and prod.multi_spike:
        notes.append(f"{plan.name}: at most {xylo.HIDDEN_SPIKES_MAX} spikes per step on Xylo ({prod.name}: more), as a "
                     "16-bit state saturates: identical while no neuron needs more")
    elif not output:
        ctx.append({"node": plan.name, "issue": f"{prod.name} emits one spike per step",
                    "change": f"up to {xylo.HIDDEN_SPIKES_MAX} (Xylo's hidden neurons subtract the threshold per spike)"})
    if prod.threshold == ">":
        notes.append(f"{plan.name}: '>' threshold applied as Xylo's '>=' one state unit higher (exact on the grid)")
    w = np.asarray(plan.conn.weight, np.float64) / a_syn
    rec = None if plan.recurrent is None else np.asarray(plan.recurrent, np.float64) / a_syn
    return {"w": w, "rec": rec, "dash_syn": dash_syn, "dash_mem": dash_mem, "theta": float(plan.theta),
            "bias": bias, "grid": 1 if prod.threshold == ">" else 0}


def _inputs(inputs, labels, fg, time_steps) -> tuple[np.ndarray | None, np.ndarray | None]:
    if inputs is None:
        if labels is not None:
            raise SpikeportError("--labels needs --inputs")
        return None, None
    x, y = runio.load_inputs(inputs, labels, fg.input_shape, time_steps)
    check_events(x, str(inputs))
    return x, y


def check_events(x: np.ndarray, where: str) -> None:
    if np.any(x != np.rint(x)) or np.any(x > xylo.INPUT_EVENTS_MAX):
        raise SpikeportError(f"{where}: Xylo takes input events: integers 0..{xylo.INPUT_EVENTS_MAX} per channel and "
                             f"step (got values up to {float(np.max(x)):g}, or fractions)")


def import_xylo(path: str | Path, *, dt: float, out: str | Path, producer: str = "auto", reset: str | None = None,
                reset_timing: str | None = None, allow_approx: bool = False, inputs: str | Path | None = None,
                labels: str | Path | None = None, time_steps: int | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Import ``path`` onto Xylo Audio 2 into the run folder ``out``; returns (and writes) import.json's content."""
    path, out = Path(path), Path(out)
    raw = read_any(path)
    prod = conventions.resolve(producer, getattr(raw, "metadata", None), reset, str(path), reset_timing)
    notes: list[str] = []
    dt = _check_dt(dt, prod, dict(getattr(raw, "metadata", None) or {}), notes)
    fg = flat_graph(raw, str(path), prod.flatten_batch, input_batch=prod.input_batch)
    # lower() lists what Loihi and Xylo share; reset, spike count and threshold rule are Xylo's own (below)
    low = lower.lower(fg, replace(prod, reset="zero", multi_spike=False, threshold=">"), dt, allow_approx=True)
    shared = low.approximations
    if len(low.layers) != 2:
        raise SpikeportError(f"{path}: Xylo holds two spiking layers (hidden, output), the graph has {len(low.layers)}")
    changes: list[dict] = []
    hid = _layer(changes, notes, low.layers[0], prod, output=False)
    outl = _layer(changes, notes, low.layers[1], prod, output=True)
    approximations = shared + changes
    if approximations and not allow_approx:
        first = approximations[0]
        raise SpikeportError(f"{path}: node {first['node']}: {first['issue']}; Xylo cannot express this exactly "
                             f"(pass --allow-approx to accept: {first['change']}; {len(approximations)} change(s) in all)")
    x, y = _inputs(inputs, labels, fg, None)
    T = x.shape[0] if x is not None else time_steps
    if T is None or not 1 <= int(T) <= 100_000:
        raise SpikeportError("pass --inputs FILE.npy ([N, T, ...]) or --time-steps to say how many steps a sample runs")
    if x is not None:
        timing_check(fg, prod, dt, x, y, reset_timing, str(path), notes)
    names = [p.name for p in low.layers]
    q = quantize_rnn(hid["w"], hid["rec"] if hid["rec"] is not None else np.zeros((hid["w"].shape[0],) * 2),
                     outl["w"], theta=hid["theta"], theta_out=outl["theta"], dash_syn=hid["dash_syn"],
                     dash_mem=hid["dash_mem"], dash_syn_out=outl["dash_syn"], dash_mem_out=outl["dash_mem"],
                     time_steps=int(T), dt=dt, bias=hid["bias"], bias_out=outl["bias"])
    net = q.net
    net.threshold, net.threshold_out = net.threshold + hid["grid"], net.threshold_out + outl["grid"]
    bad = net.violations()
    if bad:
        raise SpikeportError(f"{path}: does not fit Xylo Audio 2: " + "; ".join(bad))
    result = {"format": 1, "source": str(path), "producer": prod.name, "dt": dt, "time_steps": int(T),
              "target": TARGET, "reset": prod.reset,
              "reset_timing": {"option": reset_timing, "applied": conventions.timing_words(prod)},
              "conventions": prod.describe(), "notes": low.conventions + notes, "approximations": approximations,
              "exact": not approximations, "readout": "spike_count", "network": net.describe(), "source_layers": names,
              "layers": [{"layer": n, "source_nodes": p.nodes, "neuron": p.neuron_kind, "neurons": p.size,
                          "dash_syn": d["dash_syn"], "dash_mem": d["dash_mem"]}
                         for n, p, d in zip(("hidden", "output"), low.layers, (hid, outl))]}
    if x is not None:
        ref, ref_pred = reference(fg, prod, dt, x, names)
        spikes, _ = simulate(net, x.reshape(x.shape[0], x.shape[1], -1).astype(np.int64))
        pred = spikes[-1].sum(axis=0).argmax(axis=1)
        result["agreement"] = {"samples": int(x.shape[1]), "prediction_agreement": float(np.mean(pred == ref_pred))}
        if y is not None:
            result["agreement"].update(reference_accuracy=float(np.mean(ref_pred == y)),
                                       integer_accuracy=float(np.mean(pred == y)))
    _write(out, path, net, x, y, result, prod, dt)
    if progress:
        progress("imported onto Xylo Audio 2", 1, 1)
    return result


def _write(out: Path, path: Path, net: XyloNet, x, y, result: dict, prod, dt: float) -> None:
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    info = {"readout": "spike_count", "imported": True, "source_producer": prod.name, "source_graph": runio.SOURCE,
            "source_layers": result["source_layers"], "dt_source": f"the graph's dt (--dt {dt:g} s)",
            "source": f"spikeport import --target {TARGET} of {path.name}"}
    xylo_spec.write(out / runfolder.MODEL_XYLO, net, info)
    if path.resolve() != (out / runio.SOURCE).resolve():
        fileio.write_with(out / runio.SOURCE, lambda tmp: shutil.copyfile(path, tmp))
    runio.save_inputs(out, x, y)
    fileio.write_json(out / runio.IMPORT_JSON, result)


class XyloImportReference:
    """The producer's float simulation of an imported Xylo run's ``source.nir`` (not exact: the gate is prediction
    agreement; the backends are held against each other spike for spike)."""

    exact = False
    min_agreement = MIN_AGREEMENT

    def __init__(self, run_dir: str | Path, net: XyloNet, *, inputs=None, labels=None):
        self.run_dir, self.net = Path(run_dir), net
        self.fg, self.prod, self.dt, self.info = load_source(run_dir)
        self.files = (inputs, labels)
        self.names = [str(n) for n in self.info.get("source_layers", [])]
        self.dataset = f"imported from {self.prod.name} (dt = {self.dt:g} s)"
        self.describe = f"float simulation of {runio.SOURCE} with {self.prod.name}'s conventions"
        self.x = None

    def inputs(self, samples: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        inputs, labels = self.files
        if inputs is None:
            if not (self.run_dir / runio.INPUTS).is_file():
                raise SpikeportError(f"{self.run_dir}: an imported run needs inputs: pass --inputs FILE.npy")
            inputs = self.run_dir / runio.INPUTS
            labels = labels or (self.run_dir / runio.LABELS if (self.run_dir / runio.LABELS).is_file() else None)
        x, y = runio.load_inputs(inputs, labels, self.fg.input_shape, self.net.time_steps)
        check_events(x, str(inputs))
        if samples is not None:
            x, y = x[:, :samples], (None if y is None else y[:samples])
        self.x = x
        return x.reshape(x.shape[0], x.shape[1], -1).astype(np.int64), y

    def run(self, x: np.ndarray):
        _, pred = reference(self.fg, self.prod, self.dt, x.astype(np.float64), self.names)
        return None, pred, pred

    def report(self) -> dict:
        return {"imported": True, "approximations": self.info.get("approximations", []),
                "conventions": {"producer": self.prod.name, "reset": self.prod.reset,
                                "reset_timing": conventions.timing_words(self.prod)}}
