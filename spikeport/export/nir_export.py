"""Checkpoint -> NIR graph with float parameters a peer can run and Loihi integers in metadata.

Graph: ``input -> fc0 (Affine) -> lif0 (CubaLIF) -> fc1 -> lif1 -> ... -> output``.

Float meaning (explicit ``dt``, stored in the graph metadata). NIR's CubaLIF,
``tau_syn dI/dt = -I + w_in * x`` and ``tau_mem dv/dt = (v_leak - v) + r * I``, taken one forward
Euler step of ``dt`` with I updated first (Loihi's order), is exactly spikeport's layer

    I[t] = beta_syn * I[t-1] + x[t]          with beta_syn = 1 - dt/tau_syn, w_in = tau_syn/dt
    v[t] = beta_mem * v[t-1] + I[t] + bias    with beta_mem = 1 - dt/tau_mem, r = tau_mem/dt,
                                              bias = dt/tau_mem * v_leak
    spike when v > v_threshold, then v = v_reset = 0.

The float values written are the *quantized* ones (int8 weights times scale, rounded leaks,
threshold and bias), so the float graph and the integer metadata describe the same network.
Metadata per node (key ``loihi``): Affine -> ``weight`` (int8 [out, in]), ``weight_exp`` and, for a
pruned layer, ``mask`` (bool [out, in]: the synapses that exist; the float weight is zero outside);
CubaLIF -> ``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp``, ``floor_v`` (bool: v = max(v, 0)
before the threshold, KLIF; the float CubaLIF cannot say this). Graph metadata key ``spikeport``
holds dt, time steps, encoder, input levels, readout (``readout`` and the keys
``spikeport.measure.readout`` reads for it) and conventions.
"""
from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

from spikeport import __version__, fileio, limits
from spikeport.core import loihi, quant
from spikeport.core.quant import LayerQuant
from spikeport.data import INPUT_LEVELS, is_graded
from spikeport.errors import SpikeportError

# Seconds per step written into every exported graph. 1e-4 because snnTorch's importer hard-codes
# dt = 1e-4 and refuses a CubaLIF whose r != tau_mem / 1e-4; with this dt it loads our graphs and
# reproduces them exactly. Norse takes dt as an argument (``from_nir(g, dt=1e-4)``).
DT = 1e-4
NO_LEAK_STEPS = 2.0**40  # tau_mem / dt written for a layer without membrane leak (dv = 0)
NIR_FORMAT = 1
CONVENTIONS = {
    "update_order": "current (u) first, then voltage (v) with the new current",
    "threshold": "spike when v > v_threshold (strict)",
    "reset": "to zero (v_reset = 0); current not reset",
    "bias": "per-neuron voltage bias = dt/tau_mem * v_leak, added to v every step",
    "initial_state": "u = v = 0 at the start of every sample",
    "lag": "none within a sample: layer l at step t sees layer l-1's spikes of step t",
    "readout": "see 'readout' (spike_count: argmax of output spike counts, ties to the lowest index)",
}


def cuba_lif_node(lq: LayerQuant, dt: float = DT, n: int | None = None) -> nir.CubaLIF:
    """``n`` neurons (default: one per weight row; a conv layer has more)."""
    n = int(n or lq.weight.shape[0])
    beta_syn, beta_mem = quant.decay_from_du(lq.lif.du), quant.decay_from_dv(lq.lif.dv)
    tau_syn = dt / (1.0 - beta_syn)
    # dv = 0 (no leak): a finite tau_mem keeps r = tau_mem/dt and v_leak finite (beta = 1 - 2**-40 ~ 1)
    tau_mem = dt / (1.0 - beta_mem) if beta_mem < 1.0 else dt * NO_LEAK_STEPS
    bias = np.broadcast_to(lq.float_bias(), (n,)).astype(np.float64)
    v_leak = bias * tau_mem / dt
    full = lambda val: np.full(n, val, dtype=np.float64)  # noqa: E731
    meta = {"loihi": {"du": int(lq.lif.du), "dv": int(lq.lif.dv), "vth": int(lq.lif.vth),
                      "bias_mant": np.broadcast_to(np.asarray(lq.lif.bias_mant, np.int64), (n,)).copy(),
                      "bias_exp": int(lq.lif.bias_exp), "floor_v": bool(lq.lif.floor_v),
                      "state_scale": float(lq.state_scale)}}
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt),
                       v_leak=v_leak, v_threshold=full(lq.float_threshold()), v_reset=full(0.0),
                       w_in=full(tau_syn / dt), metadata=meta)


def affine_node(lq: LayerQuant, input_unit: float) -> nir.Affine:
    """Float weight = q * weight_scale * input_unit-free form: the float graph takes float inputs
    (pixels in [0, 1] or 0/1 spikes), so the weight is the dequantized int8 matrix. A negative
    weight_exp (summed input shifted right by k) is part of the integer rounding, not the float meaning."""
    w = lq.dequantized_weight()
    meta = {"loihi": {"weight": lq.weight.astype(np.int8), "weight_exp": int(lq.weight_exp),
                      "weight_scale": float(lq.weight_scale), "input_unit": float(input_unit)}}
    if lq.mask is not None:
        meta["loihi"]["mask"] = np.asarray(lq.mask, dtype=bool)
    return nir.Affine(weight=w, bias=np.zeros(w.shape[0]), metadata=meta)


def build_graph(layers: list[LayerQuant], *, input_shape: tuple[int, ...], time_steps: int, encoder: str,
                n_classes: int, extra_meta: dict | None = None, dt: float = DT) -> nir.NIRGraph:
    graded = is_graded(encoder)
    n_in = int(np.prod(input_shape))
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for i, lq in enumerate(layers):
        unit = (1.0 / INPUT_LEVELS if graded else 1.0) if i == 0 else 1.0
        nodes[f"fc{i}"], nodes[f"lif{i}"] = affine_node(lq, unit), cuba_lif_node(lq, dt)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([layers[-1].weight.shape[0]])})
    edges.append((prev, "output"))
    meta = {"spikeport": {"format": NIR_FORMAT, "producer": f"spikeport {__version__}", "dt": float(dt),
                          "time_steps": int(time_steps), "encoder": encoder, "graded_input": bool(graded),
                          "input_levels": int(INPUT_LEVELS), "input_shape": np.asarray(input_shape, np.int64),
                          "n_classes": int(n_classes), "readout": "spike_count", "conventions": CONVENTIONS,
                          **(extra_meta or {})}}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def export_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Export ``run_dir``'s checkpoint to ``model.nir`` (atomic write); returns the path."""
    from spikeport.train import checkpoint, methods

    model, cfg, raw = checkpoint.load(run_dir)
    misfits = weight_misfits(model)
    if misfits:
        raise SpikeportError(f"{run_dir}: values do not fit Loihi's integers after scaling and would be clipped: "
                             f"{limits.describe_misfits(misfits)}")
    readout = methods.get(cfg.method).readout_meta(cfg, raw["n_classes"])
    kw = dict(input_shape=tuple(raw.get("input_shape") or [raw["n_inputs"]]), time_steps=cfg.time_steps,
              encoder=cfg.encoder, n_classes=raw["n_classes"],
              extra_meta={"method": cfg.method, "dataset": cfg.data, **readout})
    if cfg.arch == "fc":
        graph = build_graph(model.quant(), **kw)
    else:  # conv / pooling / recurrent layers: one node function per kind in nir_layers
        from spikeport.export import nir_layers

        graph = nir_layers.build_net_graph(model, **kw)
    out = Path(out) if out else Path(run_dir) / "model.nir"
    fileio.write_with(out, lambda tmp: nir.write(str(tmp), graph))
    return out


def weight_misfits(model) -> list[dict]:
    """Per layer, the weights whose ``round(w / weight_scale)`` leaves Loihi's 8 bits and the biases
    whose mantissa leaves its 13 bits at the largest exponent: what quantizing would clip silently.
    Empty for spikeport's own max-abs scaling; a method with its own scale can produce misfits."""
    out = []
    for i, layer in enumerate(getattr(model, "layers", [])):
        if not (hasattr(layer, "float_params") and hasattr(layer, "quantize")):
            continue
        w, b = layer.float_params()
        lq = layer.quantize(w, b)
        fit = limits.weight_fit(f"layer {i} weights", w.detach().cpu().double().numpy(), lq.weight_scale,
                                loihi.WEIGHT_MIN, loihi.WEIGHT_MAX)
        if fit:
            out.append(fit)
        if b is not None:
            exact = np.rint(b.detach().cpu().double().numpy() * (1 << loihi.ACT_SHIFT) / lq.state_scale)
            fit = limits.weight_fit(f"layer {i} biases", exact, 2.0 ** lq.lif.bias_exp, loihi.BIAS_MANT_MIN,
                                    loihi.BIAS_MANT_MAX)
            if fit:
                out.append(fit)
    return out
