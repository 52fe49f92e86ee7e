"""The emulator's compiled connection products (numba): a :class:`Connection`'s summed input computed
from the nonzero inputs only, in integers.

Why: a layer's input is spikes (a few percent nonzero) or graded pixels (mostly zero), so most of a
dense product multiplies zeros. Here every nonzero input ``x[r, i]`` adds ``x[r, i]`` times its
fan-out (a contiguous weight row) to the row's accumulator: the work is the NeuroBench synaptic
operation count, done 16 lanes at a time. Convolutions scatter each nonzero input into an
accumulator laid out (y, x, channel), so the fan-out of one input and one tap is a contiguous run of
output channels, then write it back in spikeport's C-major order. A sum pool of disjoint windows before
the map is folded into it (an input reaches what its window's pooled position reaches: one pass);
other pools (overlapping, padded) are summed first.

Exactness: integers throughout. The accumulator is int32 when the bound ``max|x| * pool area *
max_row sum|w|`` (every partial sum lies below it, in any order) is below 2**31, else int64; the
caller applies Lava's exponent or 24-bit Conv wrap afterwards, exactly as :meth:`Connection.apply`.
``tests/test_products.py`` checks every path against :meth:`Connection.apply` and the int64 product
with the unrolled matrix (pools, padding, stride, dilation, groups, graded and binary input).

Shapes: ``x`` [M, n_in] (bool viewed as uint8, or any integer type); results [M, n_out] int32/int64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeport.core import linear, loihi
from spikeport.core.net import Connection

INT32_LIMIT = 2**31
# Above this share of nonzero inputs the float BLAS / torch product of Connection.apply is used
# (a chosen bound: at 10% spikes on 512x512 the gathers measured 2-4x faster than BLAS).
SPARSE_MAX = 0.3


LANES = 16  # the conv kernel's inner loop: a compile-time 16 (one AVX-512 or two AVX2 int32 vectors)


def _dense_rows(x, wt, out):  # pragma: no cover (compiled)
    """out[r] = sum_i x[r, i] * wt[i] over the nonzero x[r, i]; out zeroed by the caller."""
    m, n_in = x.shape
    n_out = wt.shape[1]
    for r in range(m):
        acc = out[r]
        for i in range(n_in):
            xv = x[r, i]
            if xv != 0:
                w = wt[i]
                for j in range(n_out):
                    acc[j] += np.int32(xv * w[j])


def _dense_spikes(x, wt, out):  # pragma: no cover (compiled)
    """_dense_rows for 0/1 input: additions only."""
    m, n_in = x.shape
    n_out = wt.shape[1]
    for r in range(m):
        acc = out[r]
        for i in range(n_in):
            if x[r, i] != 0:
                w = wt[i]
                for j in range(n_out):
                    acc[j] += w[j]


def _conv_rows(x, taps, wk, groups, og, out):  # pragma: no cover (compiled)
    """A cross-correlation by scatter into an accumulator laid out (position, group, slot).
    taps [H*W, kh*kw]: the output position (y * Wo + x) that input position p reaches through tap k,
    or -1; wk [C, kh*kw, og_pad]: channel c's weights to the og = C_out/groups outputs of its group
    (group c // (C/groups)), zero-padded to og_pad, a multiple of LANES; out [M, C_out*Ho*Wo]
    (C-major), overwritten."""
    c_in, n_taps, og_pad = wk.shape
    hw = taps.shape[0]
    m, n_out = out.shape
    c_grp = c_in // groups
    width = groups * og_pad
    n_pos = n_out // (groups * og)
    n_blocks = min(m, 64)
    for blk in range(n_blocks):
        acc = np.zeros(n_pos * width, np.int32)
        for r in range(blk * m // n_blocks, (blk + 1) * m // n_blocks):
            acc[:] = 0
            for c in range(c_in):
                slot = (c // c_grp) * og_pad
                for p in range(hw):
                    xv = x[r, c * hw + p]
                    if xv == 0:
                        continue
                    for k in range(n_taps):
                        q = taps[p, k]
                        if q < 0:
                            continue
                        base = q * width + slot
                        if og_pad == LANES:  # a constant trip count: one vector operation
                            for o in range(LANES):
                                acc[base + o] += np.int32(xv * wk[c, k, o])
                        else:
                            for o in range(og_pad):
                                acc[base + o] += np.int32(xv * wk[c, k, o])
            for q in range(n_pos):
                for g in range(groups):
                    for o in range(og):
                        out[r, (g * og + o) * n_pos + q] = acc[q * width + g * og_pad + o]


def conv_taps(h: int, w: int, kh: int, kw: int, ho: int, wo: int, stride, padding, dilation) -> np.ndarray:
    """[H*W, kh*kw] int32: the output position input (iy, ix) reaches through tap (ky, kx), or -1
    (torch's cross-correlation: iy = oy * stride - padding + ky * dilation)."""
    iy, ix, ky, kx = np.meshgrid(np.arange(h), np.arange(w), np.arange(kh), np.arange(kw), indexing="ij")
    ny = iy + padding[0] - ky * dilation[0]
    nx = ix + padding[1] - kx * dilation[1]
    oy, ox = ny // stride[0], nx // stride[1]
    ok = (ny >= 0) & (nx >= 0) & (ny % stride[0] == 0) & (nx % stride[1] == 0) & (oy < ho) & (ox < wo)
    return np.where(ok, oy * wo + ox, -1).reshape(h * w, kh * kw).astype(np.int32)


def _unpool_rows(wt: np.ndarray, pool_of: np.ndarray, channels: int) -> np.ndarray:
    """wt [C*Ho*Wo, n_out] (rows of pooled inputs, C-major) -> [C*H*W, n_out]: row (c, p) is pooled row
    (c, pool_of[p]), zero where the pool drops p. A sum pool of disjoint windows followed by a dense map
    is then one dense map of the unpooled input (the same integer sums)."""
    n_pos = wt.shape[0] // channels
    rows = (np.arange(channels)[:, None] * n_pos + np.maximum(pool_of, 0)[None, :]).reshape(-1)
    out = wt[rows].copy()
    out[np.tile(pool_of < 0, channels)] = 0
    return out


def _pool_rows(x, taps, c_in, out):  # pragma: no cover (compiled)
    """Sum pool per channel by scatter: taps [H*W, kh*kw] as for a convolution (an all-ones kernel);
    out [M, C*Ho*Wo] zeroed by the caller."""
    hw = taps.shape[0]
    n_taps = taps.shape[1]
    n_pos = out.shape[1] // c_in
    for r in range(x.shape[0]):
        for c in range(c_in):
            for p in range(hw):
                xv = x[r, c * hw + p]
                if xv == 0:
                    continue
                for k in range(n_taps):
                    q = taps[p, k]
                    if q >= 0:
                        out[r, c * n_pos + q] += xv


try:
    import numba

    # serial: on this 2-core shared machine numba's parallel loops measured slower (the inner loops
    # lose their vectorization), and BLAS elsewhere in the emulator already takes the second core
    _jit = numba.njit(cache=True, nogil=True)
    _dense_c, _spikes_c = _jit(_dense_rows), _jit(_dense_spikes)
    _conv_c, _pool_c = _jit(_conv_rows), _jit(_pool_rows)
except ImportError:  # the emulator then uses Connection.apply
    numba = None
    _dense_c = _spikes_c = _conv_c = _pool_c = None


def available() -> bool:
    return _dense_c is not None


def _weight_type(w: np.ndarray):
    """int32 (the accumulators' width: measured fastest, 16 lanes per instruction) when the weights fit."""
    w = np.asarray(w)
    return np.int32 if not w.size or (w.min() >= -INT32_LIMIT and w.max() < INT32_LIMIT) else np.int64


@dataclass

class Plan:
    """One connection prepared for the compiled products (weights re-laid out once per run)."""

    conn: Connection
    pool_geom: tuple | None  # (taps, C) for _pool_rows
    pool_area: int
    weights: np.ndarray | None  # dense: [n_in, n_out]; conv: [C, kh*kw, og_pad] (see _conv_rows)
    conv_geom: tuple | None  # (taps [H*W, kh*kw], groups, C_out / groups)
    row_abs: float  # max over outputs of sum |w| (1 for a pool)

    @classmethod
    def of(cls, conn: Connection) -> Plan:
        pool_geom, area, pool_of = None, 1, None
        if conn.pool is not None:
            c, h, w = conn.in_shape
            _, ho, wo = conn.pooled_shape
            taps = conv_taps(h, w, *conn.pool.kernel, ho, wo, conn.pool.stride, conn.pool.padding, (1, 1))
            area = int(np.prod(conn.pool.kernel))
            if conn.kind != "pool" and conn.pool.stride == conn.pool.kernel and conn.pool.padding == (0, 0):
                pool_of = taps.max(axis=1)  # disjoint windows: each input's one pooled position (or -1)
            else:
                pool_geom = (taps, c)
        weights, conv_geom, row_abs = None, None, 1.0
        if conn.kind == "dense":
            wt = np.asarray(conn.weight).T
            if pool_of is not None:  # fold the pool: input (c, p) carries the weights of pooled (c, pool_of[p])
                wt = _unpool_rows(wt, pool_of, conn.in_shape[0])
            weights = np.ascontiguousarray(wt, dtype=_weight_type(conn.weight))
            row_abs = linear.row_abs_sum(conn.weight)
        elif conn.kind == "conv":
            c, h, w = conn.pooled_shape
            c_out, c_grp, _, _ = conn.weight.shape
            og = c_out // conn.groups
            # wk[c, ky, kx, o] = weight[(c // c_grp) * og + o, c % c_grp, ky, kx]
            wg = np.asarray(conn.weight).reshape(conn.groups, og, c_grp, *conn.weight.shape[2:])
            kh, kw = conn.weight.shape[2:]
            og_pad = -(-og // LANES) * LANES
            weights = np.zeros((c, kh * kw, og_pad), _weight_type(conn.weight))
            weights[:, :, :og] = wg.transpose(0, 2, 3, 4, 1).reshape(c, kh * kw, og)
            _, ho, wo = conn.out_shape
            taps = conv_taps(h, w, kh, kw, ho, wo, conn.stride, conn.padding, conn.dilation)
            if pool_of is not None:  # fold the pool: an input reaches what its pooled position reaches
                taps = np.where(pool_of[:, None] >= 0, taps[np.maximum(pool_of, 0)], -1).astype(np.int32)
            conv_geom = (taps, conn.groups, og)
            row_abs = linear.row_abs_sum(conn.weight)
        return cls(conn, pool_geom, area, weights, conv_geom, row_abs)

    def accumulate(self, x: np.ndarray, peak: float, binary: bool) -> np.ndarray | None:
        """x [M, n_in] integers (bool as uint8), max|x| = ``peak`` -> raw sums [M, n_out] int32 (the pool
        and the map, without exponent or wrap); None when the bound reaches 2**31 (int64 sums)."""
        if peak * self.pool_area * self.row_abs >= INT32_LIMIT:
            return None
        m = x.shape[0]
        if self.pool_geom is not None:
            pooled = np.zeros((m, int(np.prod(self.conn.pooled_shape))), np.int32)
            _pool_c(x, *self.pool_geom, pooled)
            x, binary = pooled, False
        n_out = self.conn.shape[0]
        if self.conn.kind == "pool":
            return x
        if self.conn.kind == "dense":
            out = np.zeros((m, n_out), np.int32)
            (_spikes_c if binary else _dense_c)(x, self.weights, out)
        else:
            out = np.empty((m, n_out), np.int32)
            _conv_c(x, self.conv_geom[0], self.weights, self.conv_geom[1], self.conv_geom[2], out)
        return out

    def apply(self, x: np.ndarray) -> np.ndarray:
        """What :meth:`Connection.apply` returns, [M, out] (int32 here, int64 from the fallback). Inputs
        denser than ``SPARSE_MAX`` (and sums that need int64) go to :meth:`Connection.apply`."""
        x = np.ascontiguousarray(x)
        if not x.size or np.count_nonzero(x) > SPARSE_MAX * x.size:
            return self.conn.apply(x)
        binary = x.dtype == bool
        if binary:
            x, peak = x.view(np.uint8), 1.0
        else:
            peak = linear.peak(x)
        acc = self.accumulate(x, peak, binary)
        if acc is None:
            return self.conn.apply(x.view(bool) if binary else x)
        if self.conn.weight_exp == 0 and self.conn.lava_process != "conv":
            return acc
        return self.conn.finish(acc.astype(np.int64), peak * self.pool_area * self.row_abs)
