"""Checkpoint -> NIR graph with float parameters a peer can run and Loihi integers in metadata.

Per layer i the graph holds ``[pool{i}] [flat{i}] (conv{i} | fc{i}) -> lif{i}`` and, for a recurrent
layer, ``lif{i} -> rec{i} -> lif{i}``; the node builders, the float meaning of every node and the
metadata are in :mod:`spikeport.nirfmt.nodes` and :mod:`spikeport.nirfmt.spec`. Graph metadata
``spikeport`` holds dt, time steps, encoder, input levels, readout (``readout`` and the keys
:mod:`spikeport.core.readout` reads for it) and conventions.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import nir
import numpy as np

from spikeport.core import loihi, quant
from spikeport.core.quant import LayerQuant
from spikeport.data import input_unit, is_graded
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.nirfmt import nodes, spec


def _meta(*, input_shape: tuple[int, ...], time_steps: int, encoder: str, n_classes: int, dt: float,
          extra_meta: dict | None, floor: bool) -> dict:
    extra = dict(extra_meta or {})
    if floor:
        extra["floor_v_warning"] = spec.FLOOR_V_NOTE
    return spec.graph_meta(producer="", dt=dt, time_steps=time_steps, encoder=encoder, graded_input=is_graded(encoder),
                           input_shape=input_shape, n_classes=n_classes,
                           input_levels=round(1.0 / input_unit(encoder)), **extra)


def build_graph(layers: list[LayerQuant], *, input_shape: tuple[int, ...], time_steps: int, encoder: str,
                n_classes: int, extra_meta: dict | None = None, dt: float = spec.DT) -> nir.NIRGraph:
    """The graph of a fully connected net given its quantized layers (``fc{i} -> lif{i}``)."""
    layer_nodes = [nodes.Layer(i, [(f"fc{i}", nodes.affine_node(lq, input_unit(encoder) if i == 0 else 1.0))],
                               nodes.cuba_lif_node(lq, dt))
                   for i, lq in enumerate(layers)]
    meta = _meta(input_shape=input_shape, time_steps=time_steps, encoder=encoder, n_classes=n_classes, dt=dt,
                 extra_meta=extra_meta, floor=any(lq.lif.floor_v for lq in layers))
    return nodes.graph(layer_nodes, (int(np.prod(input_shape)),), (layers[-1].weight.shape[0],), meta)


def _layer(i: int, layer, shape: tuple[int, ...], dt: float) -> tuple[nodes.Layer, tuple[int, ...]]:
    """Layer i of a ``SpikingNet`` fed by a tensor of ``shape``: its nodes and its output shape."""
    lq = layer.quant()
    geom = getattr(layer, "geom", None)
    chain = []
    if geom is not None and geom.pool > 1:
        chain.append((f"pool{i}", nodes.pool_node(geom.pool, geom.pool, avg=geom.avg)))
    if geom is not None and geom.conv:
        chain.append((f"conv{i}", nodes.conv_node(lq, geom.pooled_shape[1:], layer.input_unit, stride=geom.stride,
                                                  padding=geom.padding)))
        out = tuple(geom.out_shape)
    else:
        if len(shape) == 3:
            chain.append((f"flat{i}", nodes.flatten_node(geom.pooled_shape if geom is not None else shape)))
        chain.append((f"fc{i}", nodes.affine_node(lq, layer.input_unit)))
        out = (layer.spec.n_out,)
    rec = nodes.recurrent_node(*layer.quant_recurrent(lq)) if hasattr(layer, "quant_recurrent") else None
    return nodes.Layer(i, chain, nodes.cuba_lif_node(lq, dt, n=layer.spec.n_out, shape=out), rec), out


def build_net_graph(model, *, input_shape: tuple[int, ...], time_steps: int, encoder: str, n_classes: int,
                    extra_meta: dict | None = None, dt: float = spec.DT) -> nir.NIRGraph:
    """The graph of a ``SpikingNet`` (conv / pooled / recurrent layers); same metadata as :func:`build_graph`."""
    spatial = hasattr(model.layers[0], "geom")
    shape = tuple(int(s) for s in input_shape) if spatial else (int(np.prod(input_shape)),)
    first_shape, layer_nodes = shape, []
    for i, layer in enumerate(model.layers):
        ln, shape = _layer(i, layer, shape, dt)
        layer_nodes.append(ln)
    floor = any(getattr(layer.quant().lif, "floor_v", False) for layer in model.layers)
    meta = _meta(input_shape=input_shape, time_steps=time_steps, encoder=encoder, n_classes=n_classes, dt=dt,
                 extra_meta=extra_meta, floor=floor)
    return nodes.graph(layer_nodes, first_shape, shape, meta)


def export_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Export ``run_dir``'s checkpoint to ``model.nir`` (atomic write); returns the path. A KLIF net's
    floor (``floor_v``) lives only in spikeport's metadata: a warning says so, and so does the graph."""
    from spikeport.train import checkpoint, methods

    model, cfg, raw = checkpoint.load(run_dir)
    if cfg.target == "xylo-audio2":
        raise SpikeportError(f"{run_dir}: trained for Xylo Audio 2; export its hardware specification with "
                             f"`spikeport export {run_dir} --xylo`")
    if cfg.neuron == "sigma-delta":
        from spikeport.export.sd_export import NO_NIR

        raise SpikeportError(f"{run_dir}: {NO_NIR}")
    misfits = weight_misfits(model)
    if misfits:
        raise SpikeportError(f"{run_dir}: values do not fit Loihi's integers after scaling and would be clipped: "
                             f"{quant.describe_misfits(misfits)}")
    readout = methods.get(cfg.method).readout_meta(cfg, raw["n_classes"])
    kw = dict(input_shape=tuple(raw.get("input_shape") or [raw["n_inputs"]]), time_steps=cfg.time_steps,
              encoder=cfg.encoder, n_classes=raw["n_classes"],
              extra_meta={"method": cfg.method, "dataset": cfg.data, **readout})
    graph = build_graph(model.quant(), **kw) if cfg.arch == "fc" else build_net_graph(model, **kw)
    if "floor_v_warning" in graph.metadata[spec.GRAPH_META]:
        warnings.warn(f"{run_dir}: {spec.FLOOR_V_NOTE}", stacklevel=2)
    out = Path(out) if out else Path(run_dir) / runfolder.MODEL_NIR
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
        fit = quant.weight_fit(f"layer {i} weights", w.detach().cpu().double().numpy(), lq.weight_scale,
                                loihi.WEIGHT_MIN, loihi.WEIGHT_MAX)
        if fit:
            out.append(fit)
        if b is not None:
            exact = np.rint(b.detach().cpu().double().numpy() * (1 << loihi.ACT_SHIFT) / lq.state_scale)
            fit = quant.weight_fit(f"layer {i} biases", exact, 2.0 ** lq.lif.bias_exp, loihi.BIAS_MANT_MIN,
                                    loihi.BIAS_MANT_MAX)
            if fit:
                out.append(fit)
    return out
