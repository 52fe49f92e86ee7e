"""y = x @ W^T for a binary input x (spikes): gathers and scatters of W's columns instead of a GEMM.

A rate- or latency-coded input, or a layer of spikes, is a {0, 1} matrix x [M, K] (M = T*B rows,
K inputs) in a float dtype. With a(r) = {j : x[r, j] = 1} the active inputs of row r:

    forward          y[r]     = sum_{j in a(r)} W^T[j]          (gather-sum of rows of W^T [K, N])
    weight gradient  gW^T[j] += g[r]  for every j in a(r)       (scatter-add of rows of g [M, N])
    input gradient   gx       = g @ W                           (dense; only when x requires grad)

With density d the forward and weight gradient do d*M*K*N adds each where the dense product does
M*K*N multiply-adds; the dense GEMM is several times more efficient per operation (FMA, cache
blocking), so the sparse form wins only below a crossover density that depends on the machine
(``benchmarks/sparse_input.py``, tables in ``benchmarks/TRAIN_SPEED.md``): which path runs is measured
on the user's machine (below).

Kernels (numba, ``prange``; float32 and float64):

- ``_rows_index``: one branch-free pass over x: the active column indices of every row (``idx`` [M, K]
  int32, first ``cnt[r]`` entries valid) and a flag for any value other than 0 or 1;
- ``_gather_sum``: the forward, parallel over rows, four active rows of W^T per pass over y[r];
- ``_scatter_blocks`` / ``_table_blocks`` + ``_reduce_blocks``: the weight gradient as ``GW_BLOCKS``
  partial sums over fixed blocks of rows (each block one task: no two threads write the same memory),
  summed in block order. The blocks do not depend on the number of threads, so the result is the
  same with any. Below ``GW_TABLE_DENSITY``: gW^T[j] += g[r] per active (r, j). At or above it, the
  "four Russians" form: rows go in groups of ``GW_TABLE_ROWS`` = R; a table holds the 2^R sums of
  the group's g rows (2^R - 1 row adds), and each input j adds the one entry named by its R bits
  in the group; four groups' entries are added per pass over gW^T[j], so gW^T is read and written
  once per 4R rows instead of once per active input (at d = 28 %, R = 4: 16 rows cost 4 * 15 table
  row adds and 784 passes of 4 row adds, instead of 3512 read-add-writes).

Determinism: every sum runs in a fixed order given (x, W, g), so the same batch gives the same bits
on every call; it is not the dense GEMM's order (results differ from ``x @ W.t()`` by float rounding,
the tests bound it).

Which path runs is measured, not set: the kernel is faster than the GEMM below a crossover density
that depends on the CPU, the threads, numba's threading layer and the shape (on one 2-core machine
the kernel took 0.4-0.8x the GEMM's time at 28 % density, on another 1.2x). A batch that could take
the kernel (x all 0 / 1, CPU float32 / float64, density at most :data:`SPARSE_MAX_DENSITY`, or
:data:`SPARSE_MAX_DENSITY_GRAD` when x requires grad) asks :class:`spikeport.files.fastest.Chooser`,
which times both paths on this layer's shapes (forward, and backward when gradients are on) a few
times and keeps the faster, cached per machine and key (shape, dtype, gradients, density rounded to
5 %) in ``$XDG_CACHE_HOME/spikeport/fastest.json``: a few tenths of a second once per layer and
density band, then none; a resumed run on the same machine takes the same path for the same batch.
Since the two paths round differently, a figure that must come out the same on any machine (``make
verify``, benchmarks/claims.py) fixes the path: ``SPIKEPORT_SPIKE_INPUT=dense`` (always the GEMM) or
``kernel`` (the kernel wherever it applies); unset or ``measure``: timed as above.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from spikeport.errors import SpikeportError
from spikeport.files import fastest

# Largest input density (fraction of ones in x) at which the kernel is timed against the GEMM at all, for
# an input that needs no gradient (the data) and for one that does (a spiking hidden layer: its input
# gradient stays a dense GEMM, so less is saved); above them the GEMM runs without a measurement. Set
# above every crossover measured with benchmarks/sparse_input.py (3200 x 784 -> 256 float32: ~60 %
# without the input gradient, ~40 % with it, 2026-12-03, AMD EPYC, 2 vCPUs); below them the timing decides.
SPARSE_MAX_DENSITY = 0.6
SPARSE_MAX_DENSITY_GRAD = 0.4
PATH_ENV = "SPIKEPORT_SPIKE_INPUT"  # dense | kernel | measure (the default): module docstring
PATHS = ("dense", "kernel", "measure")
DENSITY_BAND = 0.05  # the density part of a timing's key: batches within one band share the choice
GW_BLOCKS = 4  # fixed row blocks of the weight gradient (partial sums added in block order)
# The weight gradient by tables (``_table_blocks``) at and above this density, by scatter-adds below;
# rows per table group. Measured (1 thread, CPU ms, 3200 x 784 -> 256, float32, load average ~5):
# densities 5 / 10 / 28 / 50 %: scatter 3.9 / 6.2 / 11.0 / 17.8; tables of 4 rows 5.4 / 6.5 / 6.2 / 7.3,
# of 6 rows 6.3 / 6.9 / 6.2 / 7.1, of 8 rows 6.6 / 7.2 / 7.7 / 9.1; torch's dense g^T x 14.1 / 14.2 / 13.9 / 14.1.
GW_TABLE_DENSITY = 0.1
GW_TABLE_ROWS = 4  # 2^4 entries of N floats per group; four groups' tables (64 KiB at N = 256) stay in cache

try:
    import numba
    from numba import njit, prange
except ImportError:  # numba is a declared dependency; without it every layer runs the dense product
    numba = None


def _rows_index(x, idx, cnt):  # pragma: no cover (compiled)
    m, k = x.shape
    bad = 0
    for r in prange(m):
        c = 0
        b = 0
        for j in range(k):
            v = x[r, j]
            idx[r, c] = j  # written always, kept only when v != 0: no branch on the data
            c += v != 0
            b |= (v != 0) & (v != 1)
        cnt[r] = c
        bad += b
    return bad


def _gather_sum(table, idx, cnt, out):  # pragma: no cover (compiled)
    m, n = out.shape
    for r in prange(m):
        o = out[r]
        for i in range(n):
            o[i] = 0
        c = cnt[r]
        k = 0
        while k + 4 <= c:
            a, b, d, e = table[idx[r, k]], table[idx[r, k + 1]], table[idx[r, k + 2]], table[idx[r, k + 3]]
            for i in range(n):
                o[i] += (a[i] + b[i]) + (d[i] + e[i])
            k += 4
        while k < c:
            a = table[idx[r, k]]
            for i in range(n):
                o[i] += a[i]
            k += 1


def _scatter_blocks(g, idx, cnt, parts):  # pragma: no cover (compiled)
    blocks = parts.shape[0]
    m, n = g.shape
    step = (m + blocks - 1) // blocks
    for p in prange(blocks):
        acc = parts[p]
        acc[:] = 0
        for r in range(p * step, min(m, (p + 1) * step)):
            gr = g[r]
            for k in range(cnt[r]):
                a = acc[idx[r, k]]
                for i in range(n):
                    a[i] += gr[i]


def _table_group(x, g, r0, rows, code, table):  # pragma: no cover (compiled)
    """The R-bit codes ``code`` [K] of rows r0.. (R = ``rows``, fewer at the end) and their table [2^R, N]."""
    m, k = x.shape
    rn = min(rows, m - r0)
    code[:] = 0
    for i in range(rn):
        xr = x[r0 + i]
        for j in range(k):
            code[j] |= np.int64(xr[j] != 0) << i
    for c in range(1, table.shape[0]):
        i = 0
        while not (c >> i) & 1:
            i += 1
        if i < rn:  # entries naming rows past the end are never looked up
            t, tp, gr = table[c], table[c ^ (1 << i)], g[r0 + i]
            for q in range(t.shape[0]):
                t[q] = tp[q] + gr[q]


def _table_blocks(x, g, parts, rows):  # pragma: no cover (compiled)
    m, k = x.shape
    n = g.shape[1]
    blocks = parts.shape[0]
    groups = (m + rows - 1) // rows
    per = (groups + blocks - 1) // blocks
    for p in prange(blocks):
        acc = parts[p]
        acc[:] = 0
        tables = np.zeros((4, 1 << rows, n), g.dtype)  # entry 0 stays 0: a group with no input j adds it
        codes = np.zeros((4, k), np.int64)
        end = min(groups, (p + 1) * per)
        for first in range(p * per, end, 4):  # four groups per pass over acc
            for u in range(4):
                if first + u < end:
                    _table_group(x, g, (first + u) * rows, rows, codes[u], tables[u])
                else:
                    codes[u, :] = 0
            for j in range(k):
                a = acc[j]
                t0, t1 = tables[0, codes[0, j]], tables[1, codes[1, j]]
                t2, t3 = tables[2, codes[2, j]], tables[3, codes[3, j]]
                for q in range(n):
                    a[q] += (t0[q] + t1[q]) + (t2[q] + t3[q])


def _reduce_blocks(parts, out):  # pragma: no cover (compiled)
    blocks, k, n = parts.shape
    for i in prange(n):
        for j in range(k):
            s = parts[0, j, i]
            for p in range(1, blocks):
                s += parts[p, j, i]
            out[i, j] = s  # out [N, K]: the weight's layout


if numba is not None:
    # workqueue unless the user names a layer (it must be set before numba's first parallel call): with
    # OpenMP, numba's threads and torch's spin after each parallel region and take the cores from each
    # other; the forward + backward took up to 2x longer interleaved with torch's GEMMs
    # (benchmarks/sparse_input.py, 2 cores)
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"
    _jit = njit(parallel=True, nogil=True, cache=True)
    _rows_index, _gather_sum = _jit(_rows_index), _jit(_gather_sum)
    _scatter_blocks, _reduce_blocks = _jit(_scatter_blocks), _jit(_reduce_blocks)
    _table_group = njit(nogil=True, cache=True)(_table_group)
    _table_blocks = _jit(_table_blocks)


def available() -> bool:
    return numba is not None


def _threads() -> None:
    """numba's kernels use as many threads as torch (``torch.set_num_threads``), at most numba's pool."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def active_index(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """(idx [M, K] int32, cnt [M] int32): the active inputs of every row of a binary x [M, K] (float32 or
    float64, CPU, contiguous); None when x holds any value other than 0 and 1."""
    xn = x.detach().numpy()
    idx = np.empty(xn.shape, dtype=np.int32)
    cnt = np.empty(xn.shape[0], dtype=np.int32)
    _threads()
    return None if _rows_index(xn, idx, cnt) else (idx, cnt)


class SpikeLinear(torch.autograd.Function):
    """``x @ w.t()`` for a binary x [M, K] whose active inputs are (idx, cnt) (:func:`active_index`);
    w [N, K]; same float dtype. Gradients: w's by scatter-adds or tables, x's dense (g @ w), each only
    when needed."""

    @staticmethod
    def forward(ctx, x, w, idx, cnt):
        if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1] or idx.shape != tuple(x.shape):
            raise ValueError(f"SpikeLinear: x {tuple(x.shape)}, w {tuple(w.shape)}, index {idx.shape} do not match")
        _threads()
        wt = w.detach().t().contiguous().numpy()  # [K, N]: rows gathered per active input
        y = np.empty((x.shape[0], w.shape[0]), dtype=wt.dtype)
        _gather_sum(wt, idx, cnt, y)
        ctx.tables = int(cnt.sum(dtype=np.int64)) >= GW_TABLE_DENSITY * x.shape[0] * x.shape[1]
        if ctx.tables:  # the weight gradient reads x itself (kept by the caller anyway)
            ctx.save_for_backward(w, x)
        else:  # the index, counted as saved memory
            ctx.save_for_backward(w, torch.from_numpy(idx), torch.from_numpy(cnt))
        return torch.from_numpy(y)

    @staticmethod
    def backward(ctx, g):
        w, *found = ctx.saved_tensors
        gx = g @ w if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            _threads()
            gn = g.detach().contiguous().numpy()
            parts = np.empty((GW_BLOCKS, w.shape[1], w.shape[0]), dtype=gn.dtype)
            if ctx.tables:
                _table_blocks(found[0].detach().numpy(), gn, parts, GW_TABLE_ROWS)
            else:
                _scatter_blocks(gn, found[0].numpy(), found[1].numpy(), parts)
            gw = np.empty(tuple(w.shape), dtype=gn.dtype)
            _reduce_blocks(parts, gw)
            gw = torch.from_numpy(gw)
        return gx, gw, None, None


_CHOOSER: list[fastest.Chooser] = []  # the process's chooser, made at the first timed batch


def chooser() -> fastest.Chooser:
    """The chooser :func:`spike_linear` asks by default (cache file under the user's cache folder)."""
    if not _CHOOSER:
        _CHOOSER.append(fastest.Chooser(fastest.cache_path()))
    return _CHOOSER[0]


def _ones(x: torch.Tensor) -> float:
    """The number of ones in a 0/1 x [M, K], estimated from at most ~512 evenly spaced rows (their sum):
    enough for the density cap and the 5 % bands, and 10-20x cheaper than counting every entry
    (``torch.count_nonzero`` of a 3200 x 784 batch took 8 ms of CPU, a quarter of the GEMM it may skip).
    Not exact for other input, which the index pass refuses anyway."""
    rows = x[:: max(1, x.shape[0] // 512)]
    return float(rows.detach().sum()) * x.shape[0] / rows.shape[0]


def _candidates(x: torch.Tensor, w: torch.Tensor, ones: float) -> tuple[str, dict]:
    """The key of this product (x [M, K] holding ``ones`` ones) and its two paths, each one call of
    forward (+ backward when gradients are on) on detached copies of x and w: the caller's tensors and
    autograd graph are untouched. Nothing is allocated unless a path runs."""
    grad = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
    xd, wd = x.detach(), w.detach()
    g = []
    density = ones / x.numel()
    key = (f"spike_linear {x.shape[0]}x{x.shape[1]}->{w.shape[0]} {str(x.dtype)[6:]} "
           f"{'backward' + (' with input gradient' if x.requires_grad else '') if grad else 'forward only'} "
           f"density {round(density / DENSITY_BAND) * DENSITY_BAND:.2f}")

    def leaves():
        return (xd.detach().requires_grad_(grad and x.requires_grad),
                wd.detach().requires_grad_(grad and w.requires_grad))

    def backward(y):
        if grad:
            if not g:
                g.append(torch.full(tuple(y.shape), 1e-3, dtype=y.dtype))
            y.backward(g[0])

    def dense():
        xa, wa = leaves()
        backward(xa @ wa.t())

    def sparse():
        xa, wa = leaves()
        backward(SpikeLinear.apply(xa, wa, *active_index(xd)))
    return key, {"dense": dense, "sparse": sparse}


def spike_linear(x: torch.Tensor, w: torch.Tensor, max_density: float | None = None,
                 choose: fastest.Chooser | None | bool = True) -> torch.Tensor | None:
    """``x @ w.t()`` through :class:`SpikeLinear` for x [M, K] and w [N, K], or None where the dense
    product is to run (the caller runs it; it reports a shape mismatch itself): numba missing, shapes
    that do not match, not a CPU float32 / float64 pair of one dtype, x not all 0 / 1, its density
    above ``max_density`` (default ``SPARSE_MAX_DENSITY``, or ``SPARSE_MAX_DENSITY_GRAD`` when x
    requires grad), or the GEMM measured faster for this key (module docstring). ``choose``: True asks
    :func:`chooser`, a ``Chooser`` asks that one, False takes the kernel wherever it applies."""
    forced = os.environ.get(PATH_ENV, "measure")
    if forced not in PATHS:
        raise SpikeportError(f"{PATH_ENV}={forced!r}: must be one of {', '.join(PATHS)}")
    if forced == "dense":
        return None
    if forced == "kernel" and choose is True:
        choose = False
    if max_density is None:
        max_density = SPARSE_MAX_DENSITY_GRAD if x.requires_grad else SPARSE_MAX_DENSITY
    if (numba is None or x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]
            or x.device.type != "cpu" or w.device.type != "cpu"
            or x.dtype not in (torch.float32, torch.float64) or w.dtype != x.dtype
            or x.shape[0] == 0 or not x.is_contiguous()):
        return None
    ones = _ones(x)
    if not ones <= max_density * x.shape[0] * x.shape[1]:  # too dense (or not binary either way): no index pass
        return None
    ch = None if choose is False else chooser() if choose is True else choose
    if ch is not None:
        key, paths = _candidates(x, w, ones)
        decided = ch.known(key, paths)
        if decided == "dense":  # known: no index pass
            return None
    found = active_index(x)
    if found is None:
        return None
    if ch is not None and decided is None and ch.choose(key, paths) == "dense":
        return None
    return SpikeLinear.apply(x, w, *found)
