"""A flat NIR graph, read with one producer's conventions, as a chain of Loihi CUBA-LIF layers in float.

Each :class:`LayerPlan` is what one Lava LIF process computes, in float units (spikeport's order):

    u[t] = beta_syn * u[t-1] + M x[t] (+ W_rec s[t-1]) (+ current)
    v[t] = beta_mem * v[t-1] + u[t] + bias ;  s = v > theta ;  v <- 0

``M`` is the feed-forward map between two neurons (:mod:`spikeport.importer.connect`: ``[sum pool]
[Flatten] (dense | conv)``, or a pool alone). Neuron kinds map as: CubaLIF -> u carries
r*dt/tau_mem * I (that gain and w_in*dt/tau_syn are folded into M); LIF -> beta_syn = 0; IF ->
beta_syn = 0, beta_mem = 1. Per-neuron thresholds are folded into M's rows (per channel for a conv),
W_rec and bias (exact: v of neuron i is scaled by theta / theta_i); behind a weightless pool the gain
moves into theta instead. What Loihi cannot express exactly (multi-spike steps, subtractive reset,
membrane clamps, nonzero v_reset, membranes starting at v_leak, Delay, a reset on the step after the
spike, per-neuron time constants) raises an error naming the node, or with
``allow_approx`` is changed and listed in ``approximations``. A constant current into a
current-based synapse (an Affine / Conv2d bias, a recurrent bias) is exact: ``current``, an always-on
input line on Loihi; only where no line fits (a pool-only layer) is it approximated as a voltage bias.
Stateless Threshold nodes and LI / CubaLI membrane readouts are refused: spikeport's deploy side
reads Loihi layers by their spikes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeport.errors import SpikeportError
from spikeport.importer.connect import ConnPlan, parse
from spikeport.importer.conventions import Producer, timing_words
from spikeport.importer.neurons import euler, param
from spikeport.nirfmt.flat import FlatGraph

SPIKING = ("IF", "LIF", "CubaLIF")


@dataclass
class LayerPlan:
    """One population in float (see module docstring). ``conn``: the feed-forward map (its weights
    already carry the input gains and threshold folding); ``recurrent`` [out, out] float64 or None;
    ``bias`` [out] per step in v units; ``current`` [out] float64 or None: a constant input current into
    u on every step (a bias into a current-based synapse; Loihi: an always-on input line);
    ``nodes``: the source nodes it stands for."""

    name: str
    neuron_kind: str
    conn: ConnPlan
    beta_syn: float
    beta_mem: float
    theta: float
    bias: np.ndarray
    recurrent: np.ndarray | None = None
    nodes: list[str] = field(default_factory=list)
    current: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.conn.n_out


@dataclass
class Lowering:
    layers: list[LayerPlan]
    approximations: list[dict]
    conventions: list[str]


class _Ctx:
    def __init__(self, fg: FlatGraph, allow: bool):
        self.fg, self.allow, self.approx, self.notes = fg, allow, [], []

    def approximate(self, node: str, what: str, change: str) -> None:
        """Record an inexact mapping, or refuse it without ``allow_approx``."""
        if not self.allow:
            raise self.fg.err(node, f"{what}; Loihi cannot express this exactly (pass --allow-approx to "
                              f"accept: {change})")
        self.approx.append({"node": node, "issue": what, "change": change})


def _uniform(ctx: _Ctx, name: str, label: str, arr: np.ndarray) -> float:
    vals = np.unique(np.round(np.asarray(arr, np.float64), 12))
    if vals.size > 1:
        ctx.approximate(name, f"{label} differs between neurons ({vals.min():.6g}..{vals.max():.6g}); Loihi "
                        "has one value per layer", f"median {np.median(arr):.6g} used for every neuron")
        return float(np.median(arr))
    return float(vals[0])


def _neuron(ctx: _Ctx, name: str, node, kind: str, n: int, dt: float, prod: Producer, recurrent: bool):
    """(beta_syn, beta_mem, gain [n], theta [n], bias [n]) of one neuron node; records approximations."""
    shape = (n,)
    ones = np.ones(shape)
    r = param(node, "r", shape, 1.0) if prod.uses_r else ones
    if kind == "IF":
        beta_syn, beta_mem, gain, bias = 0.0, 1.0, r, np.zeros(shape)
        if prod.name == "norse" and not np.allclose(r, 1.0):
            gain = ones  # Norse's IAF ignores r
    else:
        tau_mem = param(node, "tau" if kind == "LIF" else "tau_mem", shape)
        v_leak = param(node, "v_leak", shape, 0.0)
        if prod.decay == "euler":
            k = euler(dt, tau_mem)
            a_mem, gain, bias = 1.0 - k, (k if prod.name == "norse" and kind == "LIF" else k * r), k * v_leak
        else:
            a_mem, gain, bias = np.exp(-(1.0 if prod.decay == "steps" else dt) / tau_mem), ones, np.zeros(shape)
            if prod.name == "rockpool":
                bias = v_leak  # Rockpool reads v_leak as its per-step bias
            elif np.any(v_leak != 0):
                ctx.approximate(name, f"{prod.name} ignores v_leak", "v_leak dropped")
        beta_mem = _uniform(ctx, name, "the membrane decay", a_mem)
        beta_syn = 0.0
        if kind == "CubaLIF":
            tau_syn = param(node, "tau_syn", shape)
            if prod.decay == "euler":
                ks = euler(dt, tau_syn)
                a_syn, gain = 1.0 - ks, gain * ks * (param(node, "w_in", shape, 1.0) if prod.uses_r else 1.0)
            else:
                a_syn = np.exp(-(1.0 if prod.decay == "steps" else dt) / tau_syn)
                if prod.name == "rockpool":  # i = beta * (i + x): the input is decayed in its own step
                    gain = gain * a_syn
            beta_syn = _uniform(ctx, name, "the synaptic decay", a_syn)
        if prod.init_v_leak and np.any(v_leak != 0):
            ctx.approximate(name, "Norse starts the membrane (and its synapse) at v_leak and leaks the synapse "
                            "toward v_leak", "state starts at 0; only the membrane bias dt/tau_mem*v_leak kept")
    theta = param(node, "v_threshold", shape)
    if np.any(theta <= 0):
        raise ctx.fg.err(name, "v_threshold must be positive for Loihi")
    v_reset = param(node, "v_reset", shape, 0.0)
    if prod.reset == "zero" and np.any(v_reset != 0):
        ctx.approximate(name, "resets to a nonzero v_reset", "reset to 0")
    if prod.reset == "subtract":
        ctx.approximate(name, "resets by subtracting the threshold (--reset subtract; NIR does not store the rule)",
                        "reset to zero (Loihi's rule)")
    if prod.multi_spike:
        ctx.approximate(name, f"emits several spikes per step (n = v // v_th, {prod.name})", "at most one spike per step")
    if kind == "IF" and prod.if_clamp:
        ctx.approximate(name, "clamps the membrane at -v_threshold (min_v_mem)", "no clamp")
    if prod.timing(kind, recurrent) == "next_step":
        why = " (snnTorch RSynaptic 0.8-1.0 as released)" if recurrent and kind == "CubaLIF" else ""
        ctx.approximate(name, f"resets on the step after a spike{why} under --reset-timing "
                        f"{timing_words(prod)}; pass --reset-timing same-step if the graph was trained with a "
                        "same-step reset (e.g. snnTorch reset_delay=False before 0.8)", "reset in the spike's own step")
    if prod.threshold == ">=":
        ctx.notes.append(f"{name}: '>=' threshold applied as '>' one integer state unit lower (exact on the grid)")
    return beta_syn, beta_mem, gain, theta, bias


def _line_fits(conn: ConnPlan, current: np.ndarray) -> bool:
    """An always-on input line is written on the layer's weighted node (its NIR bias): a pool-only layer
    has none, and a conv's bias is one value per output channel."""
    if conn.kind == "pool":
        return False
    if conn.kind == "conv":
        per = np.asarray(current, np.float64).reshape(conn.out_shape[0], -1)
        return bool(np.allclose(per, per[:, :1], rtol=1e-12, atol=0))
    return True


def _walk_to_neuron(ctx: _Ctx, start: str, fwd_succ: dict) -> tuple[list[str], str | None]:
    fg, names, cur = ctx.fg, [], start
    while True:
        nxt = fwd_succ[cur]
        if not nxt:
            raise fg.err(cur, "leads nowhere (no path to the Output)")
        if len(nxt) != 1:
            raise fg.err(cur, f"feeds {len(nxt)} nodes; spikeport deploys chains of layers")
        cur = nxt[0]
        kind = fg.kinds[cur]
        if kind in SPIKING or kind in ("LI", "CubaLI", "Integrator", "I", "Threshold") or cur == fg.output:
            return names, cur
        names.append(cur)


def lower(fg: FlatGraph, prod: Producer, dt: float, allow_approx: bool = False, lines: bool = True) -> Lowering:
    """The chain of Loihi layers ``fg`` stands for under ``prod`` (see module docstring). ``lines=False``
    (an import for lava-dl's netx, whose only bias is added to v): every constant input current is the
    voltage-bias approximation, which needs ``allow_approx``."""
    ctx = _Ctx(fg, allow_approx)
    srcs = fg.sources
    fwd_succ: dict[str, list[str]] = {n: [] for n in fg.nodes}
    rec_of: dict[str, list[str]] = {n: [] for n in fg.nodes}
    for a, b in fg.edges:
        (rec_of[b] if (a, b) in fg.recurrent else fwd_succ[a]).append(a if (a, b) in fg.recurrent else b)
    loop_nodes: dict[str, list[str]] = {}
    for n, rec_srcs in rec_of.items():  # a recurrent loop: n -> c1 -> ... -> ck -(back edge)-> n
        for src in rec_srcs:
            path, cur = [src], src
            while cur != n:
                ins = [s for s, r in srcs[cur] if not r]
                if len(ins) != 1:
                    raise fg.err(cur, "a recurrent loop must be a chain of connections back to its neuron")
                cur = ins[0]
                if cur != n:
                    path.insert(0, cur)
            loop_nodes.setdefault(n, []).extend(path)
    for n, path in loop_nodes.items():
        fwd_succ[n] = [m for m in fwd_succ[n] if m not in path]
    layers: list[LayerPlan] = []
    cur, dep_shape = fg.input, fg.input_shape
    while True:
        conns, neuron = _walk_to_neuron(ctx, cur, fwd_succ)
        if neuron == fg.output:
            if conns and any(fg.kinds[c] not in ("Identity", "Flatten") for c in conns):
                raise fg.err(conns[0], "a connection after the last neuron layer cannot be read out on Loihi")
            break
        kind = fg.kinds[neuron]
        if kind == "Threshold":
            raise fg.err(neuron, "a stateless Threshold node cannot be expressed as a Loihi LIF layer")
        if kind not in SPIKING:
            raise fg.err(neuron, f"{kind} is a membrane readout: spikeport's deploy side reads Loihi layers by "
                         "their spikes (re-export with a spiking output layer)")
        conn = parse(fg, conns, fg.shapes[cur], dep_shape, ctx.approximate)
        n = conn.n_out
        loop = loop_nodes.get(neuron, [])
        W_rec, b_in = None, conn.const
        b_node = conns[-1] if conns else neuron
        if loop:  # a recurrent bias is a constant input from step 0 on (see simulate)
            rec = parse(fg, loop, fg.shapes[neuron], (n,), ctx.approximate)
            if rec.kind != "dense" or rec.weight.shape != (n, n):
                raise fg.err(loop[-1], "a recurrent loop must be a dense map of the layer onto itself")
            W_rec, b_in = rec.weight, b_in + rec.const
            b_node = loop[-1] if np.any(rec.const != 0) else b_node
        beta_syn, beta_mem, gain, theta, bias = _neuron(ctx, neuron, fg.nodes[neuron], kind, n, dt, prod, bool(loop))
        current = None
        if np.any(b_in != 0):
            if beta_syn == 0.0:  # u forgets every step: a constant current is a constant voltage bias
                bias = bias + gain * b_in
            elif lines and _line_fits(conn, gain * b_in):
                current = gain * b_in
                ctx.notes.append(f"{b_node}: its bias, a constant current into the synapse of '{neuron}', is an "
                                 "always-on input line on Loihi (exact up to weight quantization)")
            else:
                where = ("that lava-dl's netx cannot carry (--netx: its only bias is added to v)" if not lines else
                         "that no always-on input line carries here (behind a weightless pool, or differing within a "
                         "conv channel)")
                ctx.approximate(b_node, f"a constant input current (bias) into a current-based synapse {where}",
                                "applied to the membrane as gain*b/(1 - beta_syn) from step 0")
                bias = bias + gain * b_in / (1.0 - beta_syn)
        theta_ref = float(np.max(theta))
        c = theta_ref / theta
        f = c * gain * conn.gain
        conn.gain = 1.0
        kappa = conn.scale_outputs(f, lambda why, _n=neuron: fg.err(_n, why))
        layers.append(LayerPlan(name=neuron, neuron_kind=kind, conn=conn, beta_syn=beta_syn, beta_mem=beta_mem,
                                theta=theta_ref / kappa, bias=c * bias / kappa,
                                recurrent=None if W_rec is None else (f / kappa)[:, None] * W_rec,
                                nodes=conns + [neuron] + loop,
                                current=None if current is None else c * current / kappa))
        cur, dep_shape = neuron, conn.out_shape
    if not layers:
        raise SpikeportError(f"{fg.path}: graph has no spiking neuron layers")
    return Lowering(layers, ctx.approx, ctx.notes)
