"""``spikeport import``: a peer's NIR graph -> a spikeport run folder that deploy, parity, energy and
report work on.

The folder holds ``model.nir`` (spikeport's own format: float parameters of the *quantized* network,
Loihi integers in node metadata, recurrent layers as ``lifK -> recK -> lifK``), ``source.nir`` (a copy
of the peer's file, the float reference's input), ``import.json`` (producer, dt, conventions, the
approximations made, per-layer quantization error and clipped-weight fraction, which samples calibrated
and which were scored, and the float reference vs integer agreement on the scored ones) and, when given,
``calibration_inputs.npy`` / ``calibration_labels.npy`` (the samples the quantizer was calibrated on) and
``inputs.npy`` / ``labels.npy`` (the others: what the agreement, parity and the report score).

Calibration and scoring never share a sample (``runio.calibration_split``): with ``--inputs`` of N
samples, ``--calibration`` of them (default min(256, N // 2), a seeded choice) calibrate the quantizer
(and the reset-timing check), and the agreement is measured on the rest. ``import.json``'s ``samples``
names both by their index in the ``--inputs`` file.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import nir
import numpy as np

from spikeport.core.readout import predict_net
from spikeport.deploy import emulator
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.importer import conventions, lower, quantize, runio
from spikeport.importer.simulate import predict, simulate
from spikeport.nirfmt import nodes
from spikeport.nirfmt.flat import flat_graph, read_any
from spikeport.nirfmt.load import to_loihi_net
from spikeport.nirfmt.spec import graph_meta


def _conn_nodes(i: int, plan: lower.LayerPlan, ql: quantize.QLayer, unit: float) -> list[tuple[str, nir.NIRNode]]:
    """The spikeport-format nodes of layer i's feed-forward map: [pool] [flatten] (fc | conv); the bias
    line (if any) is the weighted node's bias (one value per channel for a conv)."""
    c, out, lq, line = plan.conn, [], ql.lq, ql.line
    if c.pool is not None:
        out.append((f"pool{i}", nodes.pool_node(*c.pool)))
    pooled = c.in_shape if c.pool is None or len(c.in_shape) < 3 else (c.in_shape[0], *lin_out(c.in_shape, c.pool))
    if c.kind == "dense":
        if len(c.in_shape) > 1:
            out.append((f"flat{i}", nodes.flatten_node(pooled)))
        out.append((f"fc{i}", nodes.affine_node(lq, unit, line)))
    elif c.kind == "conv":
        if line is not None:  # the lowering puts a line on a conv only where it is constant per channel
            line = replace(line, weight=np.asarray(line.weight).reshape(c.out_shape[0], -1)[:, 0])
        out.append((f"conv{i}", nodes.conv_node(lq, pooled[1:], unit, stride=c.stride, padding=c.padding,
                                                dilation=c.dilation, groups=c.groups, line=line)))
    return out


def lin_out(shape: tuple[int, ...], pool: tuple) -> tuple[int, int]:
    from spikeport.core.linear import out_hw

    return out_hw(shape[1], shape[2], *pool)


def build_graph(plans: list[lower.LayerPlan], layers: list[quantize.QLayer], *,
                input_shape: tuple[int, ...], spec: quantize.InputSpec, time_steps: int, dt: float,
                meta: dict) -> nir.NIRGraph:
    """spikeport-format graph: input -> [pool0] [flat0] (fc0 | conv0) -> lif0 (<-> rec0) -> ... -> output."""
    layer_nodes = [nodes.Layer(i, _conn_nodes(i, plan, ql, spec.unit if i == 0 else 1.0),
                               nodes.cuba_lif_node(ql.lq, dt, n=plan.size, shape=plan.conn.out_shape),
                               None if ql.rec is None else nodes.affine_node(ql.rec, 1.0))
                   for i, (plan, ql) in enumerate(zip(plans, layers))]
    n_out = plans[-1].size
    sp = graph_meta(producer="import", dt=dt, time_steps=time_steps, encoder="imported", graded_input=spec.graded,
                    input_unit=spec.unit, input_shape=input_shape, n_classes=n_out, **meta)
    return nodes.graph(layer_nodes, input_shape, (n_out,), sp, type_check=False)


IMPORT_READOUTS = ("spike_count", "current_sum")  # core.readout's readouts an import can choose


def _check_dt(dt, prod: conventions.Producer, metadata: dict, notes: list[str]) -> float:
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise SpikeportError(f"--dt must be a number of seconds, got {dt!r}") from None
    if not (np.isfinite(dt) and 0 < dt <= 10.0):
        raise SpikeportError(f"--dt must be a positive number of seconds (at most 10), got {dt!r}")
    stored = conventions.graph_dt(metadata)
    if stored is not None and not np.isclose(stored, dt, rtol=1e-9):
        raise SpikeportError(f"--dt {dt:g} differs from the dt {stored:g} the graph was exported with")
    if prod.dt_default is not None and not np.isclose(prod.dt_default, dt, rtol=1e-9):
        notes.append(f"{prod.name}'s own importer assumes dt = {prod.dt_default:g} s; this import uses dt = {dt:g} s")
    if prod.decay == "steps":
        notes.append(f"{prod.name} counts steps: time constants are read in steps, dt = {dt:g} s is recorded only")
    return dt


def import_graph(path: str | Path, *, dt: float, out: str | Path, producer: str = "auto", reset: str | None = None,
                 reset_timing: str | None = None, allow_approx: bool = False, inputs: str | Path | None = None,
                 labels: str | Path | None = None, time_steps: int | None = None, weight_bits: int = 8,
                 readout: str = "spike_count", netx: bool = False, calibration: float | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Import ``path`` into the run folder ``out``; returns (and writes) import.json's content.
    ``reset`` / ``reset_timing`` (``--reset zero|subtract``, ``--reset-timing same-step|next-step``; None:
    the producer's current release) say what NIR does not store. ``weight_bits`` 16 (``--weight-bits``):
    dense layers get 16-bit weights, two Loihi synapses each (``importer.quantize``). ``progress(stage, done,
    total)`` follows the calibration, the layers quantized and the check. ``readout`` (``--readout``): how
    the deployed network's outputs become classes (``core.readout``: spike_count, or current_sum, the output
    population's summed synaptic current). ``netx`` (``--netx``): integers lava-dl's netx expresses, so
    ``spikeport export RUN --netx`` can write the run (weight_exp 0, bias_exp 6, no bias lines: a bias current
    becomes the voltage-bias approximation, which needs ``allow_approx``). ``calibration`` (``--calibration``):
    how many of the inputs calibrate, a count >= 1 or a fraction in (0, 1) (default: min(256, N // 2)); the
    rest are scored (module docstring)."""
    if weight_bits not in (8, 16):
        raise SpikeportError(f"--weight-bits must be 8 or 16, got {weight_bits}")
    if netx and weight_bits != 8:
        raise SpikeportError("--netx and --weight-bits 16 exclude each other: netx gives a weight one 8-bit synapse")
    if readout not in IMPORT_READOUTS:
        raise SpikeportError(f"--readout must be one of {', '.join(IMPORT_READOUTS)}, got {readout!r}")
    path, out = Path(path), Path(out)
    tick = progress or (lambda _stage, _done, _total: None)
    raw = read_any(path)
    prod = conventions.resolve(producer, getattr(raw, "metadata", None), reset, str(path), reset_timing)
    notes: list[str] = []
    dt = _check_dt(dt, prod, dict(getattr(raw, "metadata", None) or {}), notes)
    fg = flat_graph(raw, str(path), prod.flatten_batch, input_batch=prod.input_batch)
    low = lower.lower(fg, prod, dt, allow_approx, lines=not netx)
    x, split, cal, scored = _samples(inputs, labels, calibration, fg.input_shape)
    T = x.shape[0] if x is not None else time_steps
    if T is None or not 1 <= int(T) <= 100_000:
        raise SpikeportError("pass --inputs FILE.npy ([N, T, ...]) or --time-steps to say how many steps a sample runs")
    check = None if x is None else timing_check(fg, prod, dt, *cal, reset_timing, str(path), notes)
    spec = quantize.input_spec(x)  # the input format (binary, graded, float unit) every sample must fit
    if spec.max_error > 0:
        low.approximations.append({"node": fg.input, "issue": "float inputs", "change":
                                   f"quantized to integers of {spec.unit:.6g} (worst error {spec.max_error:.3g})"})
    names = [p.name for p in low.layers]
    layers = quantize_all(fg, prod, dt, low.layers, spec, cal[0], int(T), tick, wide=weight_bits == 16, netx=netx)
    meta = {"source_producer": prod.name, "source_graph": runio.SOURCE, "source_layers": names, "readout": readout}
    graph = build_graph(low.layers, layers, input_shape=fg.input_shape, spec=spec, time_steps=int(T), dt=dt, meta=meta)
    net = to_loihi_net(graph, out / runfolder.MODEL_NIR)  # the graph deploys as written (validated here)
    result = {"format": 1, "source": str(path), "producer": prod.name, "dt": dt, "time_steps": int(T),
              "reset": prod.reset, "reset_timing": {"option": reset_timing, "applied": conventions.timing_words(prod)},
              "conventions": prod.describe(), "notes": low.conventions + notes,
              "approximations": low.approximations, "exact": not low.approximations,
              "input": {"unit": spec.unit, "graded": spec.graded, "max_error": spec.max_error},
              "readout": readout, "target": "netx" if netx else "lava",
              "weight_bits": {"option": weight_bits, "synapses_per_weight": [2 if q.lq.wide else 1 for q in layers]},
              "network": net.describe(), "layers": [_layer_report(i, p, q) for i, (p, q) in enumerate(zip(low.layers, layers))]}
    if check is not None:
        result["reset_timing_check"] = check
    if split is not None:
        result["samples"] = runio.split_record(inputs, x.shape[1], *split)
        tick("float reference vs integers (scored samples)", 0, len(split[1]))
        result["agreement"] = agreement(fg, prod, dt, net, *scored, spec, names)
        tick("float reference vs integers (scored samples)", len(split[1]), len(split[1]))
    _write_run(out, path, graph, scored, cal, result)
    return result


def _samples(inputs, labels, calibration, input_shape: tuple[int, ...]) -> tuple:
    """(x [T, N, ...] float or None, (calibration indices, scored indices) or None, (x, y) of the calibration
    samples, (x, y) of the scored samples): ``--inputs`` split by ``runio.calibration_split``."""
    if inputs is None:
        if labels is not None or calibration is not None:
            raise SpikeportError("--labels and --calibration need --inputs")
        return None, None, (None, None), (None, None)
    x, y = runio.load_inputs(inputs, labels, input_shape)
    split = runio.calibration_split(x.shape[1], calibration, str(inputs))
    cal, scored = ((x[:, idx], None if y is None else y[idx]) for idx in split)
    return x, split, cal, scored


def quantize_all(fg, prod, dt: float, plans: list[lower.LayerPlan], spec: quantize.InputSpec, x: np.ndarray | None,
                 T: int, tick, wide: bool = False, netx: bool = False) -> list[quantize.QLayer]:
    """Every layer quantized in turn; with calibration inputs ``x`` [T, B, ...] each candidate is scored
    against the float reference's spikes on them (the layer fed the reference's inputs)."""
    names, ref = [p.name for p in plans], None
    if x is not None:
        tick("calibration: float simulation (samples)", 0, x.shape[1])
        ref = simulate(fg, prod, dt, x, record=names)
        tick("calibration: float simulation (samples)", x.shape[1], x.shape[1])
        layer_in = spec.to_int(x).reshape(x.shape[0], x.shape[1], -1)
    layers = []
    for i, plan in enumerate(plans):
        target = None if ref is None else ref.outputs[plan.name].reshape(T, -1, plan.size) > 0
        layers.append(quantize.quantize_layer(plan, spec.unit if i == 0 else 1.0, spec.graded and i == 0,
                                              prod.threshold, None if ref is None else layer_in, target, wide,
                                              netx))
        if ref is not None:
            layer_in = target.astype(np.int64)
        tick("quantizing (layers)", i + 1, len(plans))
    return layers


def _layer_report(i: int, plan: lower.LayerPlan, ql: quantize.QLayer) -> dict:
    lif = ql.lq.lif
    return {"layer": f"lif{i}", "source_nodes": plan.nodes, "neuron": plan.neuron_kind, "neurons": plan.size,
            "connection": plan.conn.kind, "du": int(lif.du), "dv": int(lif.dv), "vth": int(lif.vth), **ql.report}


def _write_run(out: Path, path: Path, graph, scored: tuple, cal: tuple, result: dict) -> None:
    """model.nir, source.nir, the scored samples (inputs.npy / labels.npy), the calibration samples
    (calibration_inputs.npy / calibration_labels.npy; removed when none), import.json."""
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_with(out / runfolder.MODEL_NIR, lambda tmp: nir.write(str(tmp), graph))
    if path.resolve() != (out / runio.SOURCE).resolve():
        fileio.write_with(out / runio.SOURCE, lambda tmp: shutil.copyfile(path, tmp))
    runio.save_inputs(out, *scored)
    for name in (runfolder.CALIBRATION_INPUTS, runfolder.CALIBRATION_LABELS):
        (out / name).unlink(missing_ok=True)
    runio.save_inputs(out, *cal, names=(runfolder.CALIBRATION_INPUTS, runfolder.CALIBRATION_LABELS))
    fileio.write_json(out / runio.IMPORT_JSON, result)


TIMING_MARGIN = 0.05  # accuracy points by which the other reset timing must win to call the choice wrong


def timing_check(fg, prod: conventions.Producer, dt: float, x: np.ndarray, y, option: str | None, path: str,
                 notes: list[str]) -> dict | None:
    """The observable that tells reset timings apart (NIR stores none): the float reference's predictions
    on the calibration inputs ``x`` [T, B, ...] (labels ``y``) under the timing applied and under each
    uniform timing of ``--reset-timing``. Returns ``{"applied", "accuracy" (with labels),
    "prediction_agreement"}`` per timing. With labels, when another timing classifies at least TIMING_MARGIN better: an error naming
    ``--reset-timing`` if the timing was the producer's default, a note if the user chose it."""
    if prod.name not in conventions.NEXT_STEP_PRODUCERS:
        return None
    applied = conventions.timing_words(prod)
    preds = {applied: predict(simulate(fg, prod, dt, x, record=[fg.output]))}
    for word, t in conventions.TIMINGS.items():
        if word != applied:
            alt = replace(prod, reset_timing=t, recurrent_cuba_reset=t)
            preds[word] = predict(simulate(fg, alt, dt, x, record=[fg.output]))
    out = {"applied": applied, "samples": int(x.shape[1]),
           "prediction_agreement": {w: float(np.mean(p == preds[applied])) for w, p in preds.items()}}
    if y is None:
        return out
    acc = {w: float(np.mean(p == y)) for w, p in preds.items()}
    out["accuracy"] = acc
    best = max(acc, key=acc.get)
    if acc[best] >= acc[applied] + TIMING_MARGIN:
        why = (f"{path}: the float reference classifies {acc[applied]:.1%} of the labelled inputs under "
               f"--reset-timing {applied} but {acc[best]:.1%} under --reset-timing {best}")
        if option is None:
            raise SpikeportError(f"{why}: the graph was trained with the other reset timing (NIR does not store it); "
                                 f"pass --reset-timing {best} (an explicit --reset-timing imports anyway)")
        notes.append(why + " (kept: --reset-timing was given)")
    return out


def reference(fg, prod, dt: float, x: np.ndarray, names: list[str], readout: bool = False) -> tuple:
    """Float reference spikes per layer ([T, B, N] bool, spike counts > 0) and its predictions [B]; with
    ``readout``, also the summed readout per sample [B, n_out] (spike counts, or membrane sums of a
    non-spiking output) that the predictions are the argmax of."""
    res = simulate(fg, prod, dt, x, record=names + [fg.output])
    spikes = [res.outputs[n].reshape(x.shape[0], x.shape[1], -1) > 0 for n in names]
    return (spikes, predict(res), res.readout.sum(axis=0)) if readout else (spikes, predict(res))


def agreement(fg, prod, dt: float, net, x: np.ndarray, y, spec: quantize.InputSpec, names: list[str]) -> dict:
    """Float reference vs the integer network (emulator) on the scored inputs ``x`` [T, B, ...]."""
    ref, ref_pred = reference(fg, prod, dt, x, names)
    run = emulator.run(net, spec.to_int(x))
    pred = predict_net(net, spec.to_int(x), run.spikes)
    out = {"samples": int(x.shape[1]), "prediction_agreement": float(np.mean(pred == ref_pred)),
           "spike_agreement": [float(np.mean(a == b)) for a, b in zip(ref, run.spikes)]}
    if y is not None:
        out["reference_accuracy"] = float(np.mean(ref_pred == y))
        out["integer_accuracy"] = float(np.mean(pred == y))
    return out


def load_source(run_dir: str | Path) -> tuple:
    """(flat source graph, producer, dt, import.json) of an imported run folder."""
    run_dir = Path(run_dir)
    info = fileio.read_json(run_dir / runio.IMPORT_JSON)
    try:
        timing = (info.get("reset_timing") or {}).get("option")  # runs imported before --reset-timing: None
        prod = conventions.resolve(str(info["producer"]), None, str(info["conventions"]["reset"]), str(run_dir),
                                   None if timing is None else str(timing))
        dt = float(info["dt"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise SpikeportError(f"{run_dir / runio.IMPORT_JSON}: missing or bad 'producer', 'conventions', "
                             "'reset_timing' or 'dt'") from None
    raw = read_any(run_dir / runio.SOURCE)
    return flat_graph(raw, str(run_dir / runio.SOURCE), prod.flatten_batch, input_batch=prod.input_batch), prod, dt, info
