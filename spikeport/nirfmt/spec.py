"""The spikeport NIR format's constants and conventions, declared once.

A spikeport-format graph is a chain ``input -> [pool] [flatten] (Affine | Conv2d) -> CubaLIF (<->
recurrent Affine) -> ... -> output`` whose float parameters are the quantized network and whose
node metadata ``loihi`` holds the Loihi integers; the graph metadata ``spikeport`` holds the
fields below (:data:`GRAPH_FIELDS`). :mod:`spikeport.nirfmt.nodes` builds such graphs,
:mod:`spikeport.nirfmt.load` reads them, :mod:`spikeport.nirfmt.guard` checks any NIR file first.
"""
from __future__ import annotations

import numpy as np

from spikeport import __version__

FORMAT = 1
# Seconds per step written into every exported graph. 1e-4 because snnTorch's importer hard-codes
# dt = 1e-4 and refuses a CubaLIF whose r != tau_mem / 1e-4; with this dt it loads our graphs and
# reproduces them exactly. Norse takes dt as an argument (``from_nir(g, dt=1e-4)``).
DT = 1e-4
# Largest magnitude of a finite float parameter a reader accepts (weights, thresholds, time constants,
# r, v_leak): :mod:`spikeport.nirfmt.guard` refuses more, so every writer must stay within it.
MAX_ABS = 1e12
# A layer without membrane leak (dv = 0). NIR's CubaLIF, tau_mem dv/dt = (v_leak - v) + r I, has no finite
# form of it: tau_mem = +inf makes the input gain r*dt/tau_mem zero for any finite r (Norse's from_nir
# then integrates nothing; snnTorch's asserts r == tau_mem/dt). spikeport writes the nearest finite one:
# tau_mem = K*dt, r = K, v_leak = K*bias with K = 2**k, so the gain r*dt/tau_mem = 1 and the bias
# dt/tau_mem*v_leak are exact in binary floating point and the leak is 1/K per step (beta = 1 - 1/K: exactly
# 1 in float32 from k = 25 on). k is the largest in [NO_LEAK_MIN_EXP, NO_LEAK_MAX_EXP] that keeps tau_mem,
# r and v_leak within MAX_ABS (``nodes.no_leak_steps``).
NO_LEAK_MAX_EXP, NO_LEAK_MIN_EXP = 39, 24  # 2**39 ~ 5.5e11: r = K itself within MAX_ABS
NODE_META, GRAPH_META = "loihi", "spikeport"  # metadata keys of nodes and of the graph
# node types any NIR file may hold (nir 1.0.x), and the time-constant fields where +inf means no leak
KNOWN_NODES = {"Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
               "Flatten", "Threshold", "Delay", "IF", "LI", "LIF", "CubaLIF", "CubaLI", "Integrator", "I",
               "NIRGraph"}
TAU_FIELDS = ("tau", "tau_mem", "tau_syn")
RESET_KEYS = ("reset", "reset_mode", "reset_mechanism")
# a population's bias line (an always-on input: a constant current into u), in its weighted node's metadata
LINE_WEIGHT, LINE_EXP, LINE_SCALE = "line_weight", "line_weight_exp", "line_scale"
LINE_EXP_MAX = 24  # where producers write a reset rule, if at all
# a dense weight matrix (or a bias line) of 16-bit weights, two Loihi synapses each (core.net "wide"):
# metadata weight_bits = 16 (line_weight_bits for a line), int16 weights, weight_exp 0; absent: 8 bits
WEIGHT_BITS, LINE_BITS, WIDE_BITS = "weight_bits", "line_weight_bits", 16
CONVENTIONS = {
    "update_order": "current (u) first, then voltage (v) with the new current",
    "threshold": "spike when v > v_threshold (strict)",
    "reset": "to zero (v_reset = 0); current not reset",
    "bias": "per-neuron voltage bias = dt/tau_mem * v_leak, added to v every step",
    "bias_current": "an Affine / Conv2d bias is a constant input current into u on every step (Loihi: an "
                    "always-on input line, integers in metadata loihi.line_weight / line_weight_exp)",
    "initial_state": "u = v = 0 at the start of every sample",
    "lag": "none within a sample: layer l at step t sees layer l-1's spikes of step t",
    "readout": "see 'readout' (spike_count: argmax of output spike counts; membrane: the output population is a "
               "non-spiking integrator (dv = 0, a threshold v never reaches), argmax of its voltage v at the last "
               "step, v = the synaptic current summed over the sample plus T times its voltage bias; ties to the "
               "lowest index)",
    "layout": "tensors C-major as torch (C, H, W); conv weights [C_out, C_in, kh, kw], cross-correlation",
    "flatten": "whole sample, C-major (start_dim 0, no batch axis)",
    "pooling": "SumPool2d sums windows; AvgPool2d with loihi.as_sum: the next layer's integers take the sum",
    "recurrence": "a population's recurrent Affine carries its spikes of step t-1 into step t",
}
FLOOR_V_NOTE = ("KLIF floor: v = max(v, 0) before the threshold. NIR's CubaLIF cannot express it; it lives "
                "only in metadata['loihi']['floor_v'], so other NIR tools run this layer without the floor")


def graph_meta(*, producer: str, dt: float, time_steps: int, encoder: str, graded_input: bool,
               input_shape: tuple[int, ...], n_classes: int, input_levels: int | None = None,
               input_unit: float | None = None, **extra) -> dict:
    """The graph metadata ``spikeport`` of a spikeport-format graph (readout ``spike_count`` unless
    ``extra`` says otherwise)."""
    meta = {"format": FORMAT, "producer": f"spikeport {__version__}{' ' + producer if producer else ''}",
            "dt": float(dt), "time_steps": int(time_steps), "encoder": encoder, "graded_input": bool(graded_input),
            "input_shape": np.asarray(input_shape, np.int64), "n_classes": int(n_classes), "readout": "spike_count",
            "conventions": dict(CONVENTIONS)}
    if input_levels is not None:
        meta["input_levels"] = int(input_levels)
    if input_unit is not None:
        meta["input_unit"] = float(input_unit)
    meta.update(extra)
    return meta
