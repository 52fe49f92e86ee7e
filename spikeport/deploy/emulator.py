"""A batched integer simulator that runs a :class:`LoihiNet` exactly as Lava's fixed_pt models do.

Neurons follow :func:`spikeport.core.loihi.lif_step`, run by :mod:`spikeport.deploy.kernels` (its
arithmetic fused and compiled; ``lif_step`` itself without numba); every connection goes through
:meth:`Connection.apply` (exact float BLAS / conv on integers, Lava Conv's 24-bit wrap where Lava uses
a Conv). Per population, the feed-forward input of all T steps is one batched product (computed once
when the network input repeats every step, as direct encoding does), then the neurons run step by
step. Samples are processed in chunks that bound memory, on several threads at once (the compiled
kernels release the GIL; every chunk writes its own slice of the result, so the spikes do not depend on
the number of threads).
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
    """Spikes per population, each [T, B, N] bool; ``states`` (u, v per population, [T, B, N] int64)
    only when asked for."""

    spikes: list[np.ndarray]
    states: list[tuple[np.ndarray, np.ndarray]] | None = None

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
    """The compiled product of ``conn`` when numba is there (and ``fast``), else ``conn`` itself."""
    return products.Plan.of(conn) if conn is not None and fast and products.available() else conn


def _feedforward(conn, x: np.ndarray, maybe_static: bool) -> np.ndarray:
    """x [T, B, in] -> [T, B, out] summed inputs; one product when all T frames are equal (checked
    only where that can happen: ``maybe_static``, the network input)."""
    T, B = x.shape[:2]
    if maybe_static and T > 1 and (x == x[:1]).all():
        first = connection_input(conn, x[0])
        return np.broadcast_to(first, (T, *first.shape))
    return connection_input(conn, x.reshape(T * B, -1)).reshape(T, B, -1)


def _integrate(pop: Population, ff: np.ndarray, record_states: bool, recurrent=None):
    """Run one population over ff [T, B, N] summed inputs; returns spikes [T, B, N] and (u, v) or None."""
    T, B, N = ff.shape
    u = np.zeros((B, N), dtype=np.int64)
    v = np.zeros((B, N), dtype=np.int64)
    bias = pop.lif.effective_bias()
    if pop.bias_line is not None:  # an always-on input line: the same summed input on every step
        ff = ff + pop.line_current()
    if pop.recurrent is None:
        out, us, vs = kernels.run_block(ff, u, v, pop.lif, bias, record_states)
        return out, ((us, vs) if record_states else None)
    out = np.zeros((T, B, N), dtype=bool)
    us = np.zeros((T, B, N), dtype=np.int64) if record_states else None
    vs = np.zeros((T, B, N), dtype=np.int64) if record_states else None
    s = np.zeros((B, N), dtype=bool)
    for t in range(T):  # the recurrent input of step t needs the spikes of step t-1
        a = ff[t] + connection_input(recurrent, s)
        o, su, sv = kernels.run_block(a[None], u, v, pop.lif, bias, record_states)
        out[t], s = o[0], o[0]
        if record_states:
            us[t], vs[t] = su[0], sv[0]
    return out, ((us, vs) if record_states else None)


def _run_chunk(net: LoihiNet, x: np.ndarray, record_states: bool, plans: list):
    T, B = x.shape[:2]
    layer_in = x.reshape(T, B, -1)
    spikes, states = [], []
    for idx, (pop, (ff_conn, rec_conn)) in enumerate(zip(net.populations, plans)):
        out, st = _integrate(pop, _feedforward(ff_conn, layer_in, idx == 0), record_states, rec_conn)
        spikes.append(out)
        states.append(st)
        layer_in = out
    return spikes, states


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
        spikes, states = _run_chunk(net, x, record_states, plans)
        return EmulatorRun(spikes=spikes, states=states if record_states else None)
    # chunks are written into the whole run's arrays (a concatenation of the parts measured slower)
    spikes = [np.empty((T, B, p.size), bool) for p in net.populations]
    states = [(np.empty((T, B, p.size), np.int64), np.empty((T, B, p.size), np.int64))
              for p in net.populations] if record_states else None

    def one(lo: int) -> None:
        part, part_states = _run_chunk(net, x[:, lo:lo + chunk], record_states, plans)
        for i, s in enumerate(part):
            spikes[i][:, lo:lo + chunk] = s
            if record_states:
                states[i][0][:, lo:lo + chunk], states[i][1][:, lo:lo + chunk] = part_states[i]

    starts = range(0, B, chunk)
    if workers == 1:
        for lo in starts:
            one(lo)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
            list(pool.map(one, starts))  # list(): re-raises a chunk's exception here
    return EmulatorRun(spikes=spikes, states=states)
