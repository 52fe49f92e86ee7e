"""A batched integer simulator that runs a :class:`LoihiNet` exactly as Lava's fixed_pt models do.

Neurons follow :func:`spikeport.core.loihi.lif_step` and :func:`spikeport.core.sigma_delta.step`, run by
:mod:`spikeport.deploy.kernels` (their arithmetic fused and compiled; the core functions themselves
without numba); every connection goes through
:meth:`Connection.apply` (exact float BLAS / conv on integers, Lava Conv's 24-bit wrap where Lava uses
a Conv). Per population, the feed-forward input of all T steps is one batched product (computed once
when the network input repeats every step, as direct encoding does), then the neurons run step by
step. Samples are processed in chunks that bound memory, on several threads at once (the compiled
kernels release the GIL; every chunk writes its own slice of the result, so the spikes do not depend on
the number of threads).

Loihi 2 blocks (netx files): a sigma-delta population's output is its payloads (int32); a delayed
connection adds each delay group's summed input ``d`` steps later; an encoder population takes the
input itself (``bias``: the sample's frame is its bias mantissa, the frame constant over the sample;
``a_in``: the frames are its input). Every sample starts from a zeroed network, as Lava's streaming
resets (or, for these blocks, spikeport's per-sample Lava runs) start it. On those per-sample runs every
population starts together, ``lag`` steps before the sample's first frame reaches it: a population with a
constant drive (a bias, a bias line) already moves in those steps, so such a network is emulated over the
whole segment (:func:`_run_segment`) and each population's window cut from it.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.deploy import kernels, products
from spikeport.errors import SpikeportError

CHUNK_ELEMENTS = 1 << 24  # int64 input currents held per chunk: T * samples * neurons (128 MiB)
MIN_SPLIT = 16  # fewest samples per chunk when a batch is split across threads
THREADS_ENV = "SPIKEPORT_THREADS"


def threads() -> int:
    """Threads the emulator uses: ``$SPIKEPORT_THREADS`` when set (an integer >= 1), else the CPUs this
    process may run on."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    if not raw.isdigit() or int(raw) < 1:
        raise SpikeportError(f"{THREADS_ENV}={raw!r}: expected a whole number of threads >= 1")
    return int(raw)


@dataclass
class EmulatorRun:
    """Outputs per population, each [T, B, N]: spikes (bool) of a LIF population, payloads (int32) of a
    sigma-delta one; ``states`` (u, v per LIF population, [T, B, N] int64; sigma-delta: sigma, act) only
    when asked for; ``values`` [T, B, N] int64: a regression output's value per step (the last population's
    v, or its payload), else None."""

    spikes: list[np.ndarray]
    states: list[tuple[np.ndarray, np.ndarray]] | None = None
    values: np.ndarray | None = None

    def output_counts(self) -> np.ndarray:
        """[B, n_out] spike counts of the last population."""
        return self.spikes[-1].sum(axis=0)


def connection_input(conn: Connection | products.Plan, x: np.ndarray) -> np.ndarray:
    """Summed input of ``conn`` (or its compiled :class:`products.Plan`) for x [..., in] integers;
    returns int32 or int64 [..., out], the same values either way."""
    lead = x.shape[:-1]
    out_size = conn.conn.shape[0] if isinstance(conn, products.Plan) else conn.shape[0]
    return conn.apply(x.reshape(-1, x.shape[-1])).reshape(*lead, out_size)


def _plan(conn: Connection | None, fast: bool):
    """[(delay, the compiled product of that delay group, or the group itself)] for ``conn`` (numba there and
    ``fast``: compiled), or None without a connection."""
    if conn is None:
        return None
    use = fast and products.available()
    return [(d, products.Plan.of(c) if use else c) for d, c in conn.delay_groups()]


def _reads(conn: Connection, x: np.ndarray) -> np.ndarray:
    """What the synapse reads of x: a nonzero payload as one spike when it is ``binary``."""
    return (x != 0) if conn.binary and x.dtype != bool else x


def _feedforward(conn: Connection, groups, x: np.ndarray, maybe_static: bool) -> np.ndarray:
    """x [T, B, in] -> [T, B, out] summed inputs, each delay group's ``d`` steps later; one product when all
    T frames are equal (checked only where that can happen: ``maybe_static``, the network input)."""
    T, B = x.shape[:2]
    x = _reads(conn, x)
    if len(groups) == 1 and groups[0][0] == 0:
        plan = groups[0][1]
        if maybe_static and T > 1 and (x == x[:1]).all():
            first = connection_input(plan, x[0])
            return np.broadcast_to(first, (T, *first.shape))
        return connection_input(plan, x.reshape(T * B, -1)).reshape(T, B, -1)
    out = np.zeros((T, B, conn.shape[0]), np.int64)
    for d, plan in groups:
        if d < T:
            out[d:] += connection_input(plan, x[:T - d].reshape((T - d) * B, -1)).reshape(T - d, B, -1)
    return out


def _recurrent_input(conn: Connection, groups, spikes: np.ndarray, t: int) -> np.ndarray:
    """Summed recurrent input at step t from the population's own outputs [T, B, N] of earlier steps
    (step t - 1 - d for a delay group d)."""
    total = None
    for d, plan in groups:
        if t - 1 - d >= 0:
            part = connection_input(plan, _reads(conn, spikes[t - 1 - d]))
            total = part if total is None else total + part
    return 0 if total is None else total


def _integrate(pop: Population, ff: np.ndarray, record_states: bool, recurrent=None, bias=None):
    """Run one population over ff [T, B, N] summed inputs; returns outputs [T, B, N] (LIF spikes bool,
    sigma-delta payloads int32) and its states or None. ``bias``: a LIF's per-sample bias [B, N]."""
    T, B, N = ff.shape
    if pop.bias_line is not None:  # an always-on input line: the same summed input on every step
        ff = ff + pop.line_current()
    if pop.sd is not None:
        state = tuple(np.zeros((B, N), np.int64) for _ in range(3))
        step = lambda a: kernels.run_sd_block(a, state, pop.sd)  # noqa: E731
        keep = lambda: (state[0].copy(), state[1].copy())  # noqa: E731
        dtype = np.int32
    else:
        u, v = np.zeros((B, N), np.int64), np.zeros((B, N), np.int64)
        bias = pop.lif.effective_bias() if bias is None else bias
        if recurrent is None:
            out, us, vs = kernels.run_block(ff, u, v, pop.lif, bias, record_states)
            return out, ((us, vs) if record_states else None)
        step = lambda a: kernels.run_block(a, u, v, pop.lif, bias)[0]  # noqa: E731
        keep = lambda: (u.copy(), v.copy())  # noqa: E731
        dtype = bool
    if recurrent is None and not record_states:
        return step(ff), None
    out = np.zeros((T, B, N), dtype=dtype)
    states = [np.zeros((T, B, N), np.int64) for _ in range(2)] if record_states else None
    for t in range(T):  # the recurrent input of step t needs the outputs of earlier steps
        a = ff[t] + (_recurrent_input(pop.recurrent, recurrent, out, t) if recurrent is not None else 0)
        out[t] = step(np.asarray(a)[None])[0]
        if record_states:
            states[0][t], states[1][t] = keep()
    return out, (tuple(states) if record_states else None)


def _encoder_bias(pop: Population, x: np.ndarray) -> np.ndarray:
    """A bias encoder's per-sample bias [B, N] (the frame << bias_exp) from x [T, B, N] (one frame a sample)."""
    if x.shape[0] > 1 and not (x == x[:1]).all():
        raise ValueError(f"population {pop.name} is driven by its bias: every sample must repeat one frame")
    return np.asarray(x[0], np.int64) << int(pop.lif.bias_exp)


def _driven(pop: Population) -> bool:
    """A constant drive that moves the population without input (a bias or a bias line)."""
    bias = pop.sd.bias if pop.sd is not None else (0 if pop.encoder else pop.lif.bias_mant)
    return pop.bias_line is not None or bool(np.any(np.asarray(bias)))


def _warm_up(net: LoihiNet) -> bool:
    """True when the steps before a population's window matter (a per-sample run with a driven population
    that starts before the sample reaches it)."""
    return net.isolated_samples and any(_driven(p) for i, p in enumerate(net.populations) if net.lag(i) > 0)


def _run_segment(net: LoihiNet, x: np.ndarray, record_states: bool, plans: list):
    """Every population over the whole per-sample segment (``lag(L-1) + T`` steps from one zeroed start, one
    step per connection), each one's window cut out afterwards: :func:`_run_chunk`'s outputs."""
    T, B = x.shape[:2]
    seg = net.lag(len(net.populations) - 1) + T
    flat = x.reshape(T, B, -1)
    layer_in = np.zeros((seg, B, flat.shape[2]), flat.dtype)
    first = net.lag(0)
    layer_in[first:first + T] = flat  # a frame reaches the first population after its lag
    spikes, states, values = [], [], None
    last = len(net.populations) - 1
    for idx, (pop, (ff_plan, rec_plan)) in enumerate(zip(net.populations, plans)):
        out, st = _population(net, idx, pop, layer_in, ff_plan, rec_plan, record_states, last, frame=flat)
        lag = net.lag(idx)
        window = slice(lag, lag + T)
        if idx == last and net.regression:
            values = (out.astype(np.int64) if pop.sd is not None else st[1])[window]
        spikes.append(np.ascontiguousarray(out[window]))
        states.append(tuple(s[window] for s in st) if record_states else None)
        shifted = np.zeros_like(out)  # the next population receives it one step later
        shifted[1:] = out[:-1]
        layer_in = shifted
    return spikes, states, values


def _population(net, idx, pop, layer_in, ff_plan, rec_plan, record_states, last, frame=None):
    """One population over ``layer_in`` [T', B, in] (the previous population's outputs, or the input)."""
    keep = record_states or (idx == last and net.regression and pop.lif is not None)
    steps, B = layer_in.shape[:2]
    if pop.encoder == "bias":
        ff = np.broadcast_to(np.zeros((1, B, pop.size), np.int64), (steps, B, pop.size))
        return _integrate(pop, ff, keep, None, _encoder_bias(pop, frame if frame is not None else layer_in))
    if pop.encoder == "a_in":
        return _integrate(pop, np.asarray(layer_in, np.int64), keep)
    return _integrate(pop, _feedforward(pop.input, ff_plan, layer_in, idx == 0), keep, rec_plan)


def _run_chunk(net: LoihiNet, x: np.ndarray, record_states: bool, plans: list):
    if _warm_up(net):
        return _run_segment(net, x, record_states, plans)
    T, B = x.shape[:2]
    layer_in = x.reshape(T, B, -1)
    spikes, states, values = [], [], None
    last = len(net.populations) - 1
    for idx, (pop, (ff_plan, rec_plan)) in enumerate(zip(net.populations, plans)):
        out, st = _population(net, idx, pop, layer_in, ff_plan, rec_plan, record_states, last)
        if idx == last and net.regression:
            values = out.astype(np.int64) if pop.sd is not None else st[1]
        spikes.append(out)
        states.append(st if record_states else None)
        layer_in = out
    return spikes, states, values


def run(net: LoihiNet, x: np.ndarray, *, record_states: bool = False, fast: bool = True) -> EmulatorRun:
    """Run samples ``x`` [T, B, ...] (integer spikes or graded values; ... = ``net.input_shape`` or flat)
    through ``net``. Returns spikes [T, B, N] per population (N flat, C-major for spatial layers).
    ``fast=False`` computes every product with :meth:`Connection.apply` (float BLAS / torch) instead
    of the compiled sparse products; the spikes are the same (``tests/test_products.py``)."""
    x = np.asarray(x)
    if x.ndim < 3 or x.shape[0] != net.time_steps:
        raise ValueError(f"input must be [T={net.time_steps}, B, ...], got {x.shape}")
    T, B = x.shape[:2]
    if int(np.prod(x.shape[2:])) != net.input_size:
        raise ValueError(f"input samples have {int(np.prod(x.shape[2:]))} values, the network expects {net.input_size}")
    widest = max([net.input_size] + [p.size for p in net.populations])
    chunk = max(1, CHUNK_ELEMENTS // (T * widest))
    workers = threads()
    if workers > 1 and B >= 2 * MIN_SPLIT:  # at least one chunk per thread
        chunk = min(chunk, max(MIN_SPLIT, -(-B // workers)))
    plans = [(_plan(p.input, fast), _plan(p.recurrent, fast)) for p in net.populations]
    if B <= chunk:
        spikes, states, values = _run_chunk(net, x, record_states, plans)
        return EmulatorRun(spikes=spikes, states=states if record_states else None, values=values)
    # chunks are written into the whole run's arrays (a concatenation of the parts measured slower)
    spikes = [np.empty((T, B, p.size), np.int32 if p.graded else bool) for p in net.populations]
    states = [(np.empty((T, B, p.size), np.int64), np.empty((T, B, p.size), np.int64))
              for p in net.populations] if record_states else None
    values = np.empty((T, B, net.n_outputs), np.int64) if net.regression else None

    def one(lo: int) -> None:
        part, part_states, part_values = _run_chunk(net, x[:, lo:lo + chunk], record_states, plans)
        for i, s in enumerate(part):
            spikes[i][:, lo:lo + chunk] = s
            if record_states:
                states[i][0][:, lo:lo + chunk], states[i][1][:, lo:lo + chunk] = part_states[i]
        if values is not None:
            values[:, lo:lo + chunk] = part_values

    starts = range(0, B, chunk)
    if workers == 1:
        for lo in starts:
            one(lo)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
            list(pool.map(one, starts))  # list(): re-raises a chunk's exception here
    return EmulatorRun(spikes=spikes, states=states, values=values)
