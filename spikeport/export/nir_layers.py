"""NIR nodes for the layers of ``train.layers`` (conv, pooling, flatten, recurrence), one function each,
and the graph of a :class:`~spikeport.train.layers.SpikingNet`.

Per layer i the graph holds ``[pool{i}] [flat{i}] (conv{i} | fc{i}) -> lif{i}`` and, for a recurrent
layer, ``lif{i} -> rec{i} -> lif{i}``. Tensors keep torch's layout: a conv weight is
``[C_out, C_in, kh, kw]`` applied as a cross-correlation, a population after a conv is ``(C, H, W)``
and a Flatten is C-major over the whole sample (``start_dim=0``: NIR nodes carry no batch axis).

Float meaning and integers as in ``nir_export``: the float weights are the dequantized int8 ones,
metadata ``loihi`` carries the integers (``weight``, ``weight_exp``; conv weights 4-D). A SumPool2d
sums each window. An AvgPool2d divides by the window size; Loihi cannot, so the next layer's
integers act on the *sum* (its input unit holds the 1/k^2) and the node says so with
``metadata["loihi"]["as_sum"] = True``. A recurrent Affine acts on the population's own spikes of the
previous step (Loihi's one-step connection delay).
"""
from __future__ import annotations

import nir
import numpy as np

from spikeport import __version__
from spikeport.core.quant import LayerQuant
from spikeport.data import INPUT_LEVELS, is_graded
from spikeport.export.nir_export import CONVENTIONS, DT, NIR_FORMAT, affine_node, cuba_lif_node

LAYER_CONVENTIONS = {
    "layout": "tensors C-major as torch (C, H, W); conv weights [C_out, C_in, kh, kw], cross-correlation",
    "flatten": "whole sample, C-major (start_dim 0, no batch axis)",
    "pooling": "SumPool2d sums windows; AvgPool2d with loihi.as_sum: the next layer's integers take the sum",
    "recurrence": "a population's recurrent Affine carries its spikes of step t-1 into step t",
}


def conv_node(lq: LayerQuant, geom, input_unit: float) -> nir.Conv2d:
    """Conv2d over the layer's (pooled) input; float weight = int8 weight * weight scale."""
    meta = {"loihi": {"weight": lq.weight.astype(np.int8), "weight_exp": int(lq.weight_exp),
                      "weight_scale": float(lq.weight_scale), "input_unit": float(input_unit)}}
    return nir.Conv2d(input_shape=tuple(int(s) for s in geom.pooled_shape[1:]), weight=lq.dequantized_weight(),
                      stride=tuple(geom.stride), padding=tuple(geom.padding), dilation=(1, 1), groups=1,
                      bias=np.zeros(lq.weight.shape[0]), metadata=meta)


def pool_node(geom) -> nir.NIRNode:
    """SumPool2d (or AvgPool2d marked ``as_sum``) with window = stride = ``geom.pool``, no padding."""
    k = np.array([geom.pool, geom.pool])
    if geom.avg:
        return nir.AvgPool2d(kernel_size=k, stride=k.copy(), padding=np.zeros(2, np.int64),
                             metadata={"loihi": {"as_sum": True}})
    return nir.SumPool2d(kernel_size=k, stride=k.copy(), padding=np.zeros(2, np.int64))


def flatten_node(shape: tuple[int, ...]) -> nir.Flatten:
    """Flatten of one whole (C, H, W) sample, C-major."""
    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)


def recurrent_node(q: np.ndarray, weight_exp: int, weight_scale: float) -> nir.Affine:
    """The population's recurrent weights [N, N] (int8 on the population's state scale)."""
    meta = {"loihi": {"weight": q.astype(np.int8), "weight_exp": int(weight_exp),
                      "weight_scale": float(weight_scale), "input_unit": 1.0}}
    return nir.Affine(weight=q.astype(np.float64) * weight_scale, bias=np.zeros(len(q)), metadata=meta)


def population_node(lq: LayerQuant, n: int, shape: tuple[int, ...], dt: float) -> nir.CubaLIF:
    """``nir_export.cuba_lif_node`` for ``n`` neurons, every parameter shaped like the population."""
    node = cuba_lif_node(lq, dt, n=n)
    fields = ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")
    if len(shape) == 1:
        return node
    node.metadata["loihi"]["bias_mant"] = node.metadata["loihi"]["bias_mant"].reshape(shape)
    return nir.CubaLIF(**{f: np.asarray(getattr(node, f)).reshape(shape) for f in fields}, metadata=node.metadata)


def _layer_nodes(i: int, layer, shape: tuple[int, ...], dt: float):
    """Nodes and internal edges of layer i fed by a tensor of ``shape``; returns (nodes, edges, first
    node, population name, output shape)."""
    lq = layer.quant()
    geom = getattr(layer, "geom", None)
    nodes, chain = {}, []
    if geom is not None and geom.pool > 1:
        nodes[f"pool{i}"] = pool_node(geom)
        chain.append(f"pool{i}")
    if geom is not None and geom.conv:
        nodes[f"conv{i}"] = conv_node(lq, geom, layer.input_unit)
        chain.append(f"conv{i}")
        out = tuple(geom.out_shape)
    else:
        if len(shape) == 3:
            nodes[f"flat{i}"] = flatten_node(geom.pooled_shape if geom is not None else shape)
            chain.append(f"flat{i}")
        nodes[f"fc{i}"] = affine_node(lq, layer.input_unit)
        chain.append(f"fc{i}")
        out = (layer.spec.n_out,)
    nodes[f"lif{i}"] = population_node(lq, layer.spec.n_out, out, dt)
    chain.append(f"lif{i}")
    edges = list(zip(chain[:-1], chain[1:]))
    if hasattr(layer, "quant_recurrent"):
        nodes[f"rec{i}"] = recurrent_node(*layer.quant_recurrent(lq))
        edges += [(f"lif{i}", f"rec{i}"), (f"rec{i}", f"lif{i}")]
    return nodes, edges, chain[0], f"lif{i}", out


def build_net_graph(model, *, input_shape: tuple[int, ...], time_steps: int, encoder: str, n_classes: int,
                    extra_meta: dict | None = None, dt: float = DT) -> nir.NIRGraph:
    """The NIR graph of a ``SpikingNet`` (conv / pooled / recurrent layers); same graph metadata as
    ``nir_export.build_graph``."""
    spatial = hasattr(model.layers[0], "geom")
    shape = tuple(int(s) for s in input_shape) if spatial else (int(np.prod(input_shape)),)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for i, layer in enumerate(model.layers):
        new_nodes, new_edges, first, pop, shape = _layer_nodes(i, layer, shape, dt)
        nodes.update(new_nodes)
        edges += [(prev, first), *new_edges]
        prev = pop
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((prev, "output"))
    graded = is_graded(encoder)
    meta = {"spikeport": {"format": NIR_FORMAT, "producer": f"spikeport {__version__}", "dt": float(dt),
                          "time_steps": int(time_steps), "encoder": encoder, "graded_input": bool(graded),
                          "input_levels": int(INPUT_LEVELS), "input_shape": np.asarray(input_shape, np.int64),
                          "n_classes": int(n_classes), "readout": "spike_count",
                          "conventions": {**CONVENTIONS, **LAYER_CONVENTIONS}, **(extra_meta or {})}}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
