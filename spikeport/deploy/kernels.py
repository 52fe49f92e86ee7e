"""The emulator's compiled kernel (numba): :func:`spikeport.core.loihi.lif_step`'s arithmetic fused over
a block of steps, samples and neurons.

Why a second formulation: numpy runs ``lif_step`` as ~25 passes over int64 arrays (about 25 ns per
neuron-step); this loop keeps each neuron's u and v in registers (about 2 ns). It uses the constants
of ``core.loihi`` and the same order of operations, term for term; ``tests/test_kernels.py`` checks it
against ``lif_step`` on extreme values, and every emulator-vs-Lava test runs through it. Without
numba, :func:`run_block` falls back to ``lif_step`` itself.

Shapes: ``a`` [T, B, N] int32 or int64 summed inputs (or [1, B, N]: the same every step); ``u``, ``v`` [B, N]
int64 state, updated in place; ``bias`` [1, N] (shared) or [B, N] (per sample: an encoder's frame);
``out`` [T, B, N] bool spikes; ``us``, ``vs`` [T, B, N] int64 per-step state or [0, 0, 0] (not kept).

The sigma-delta kernel (:func:`run_sd_block`) is :func:`spikeport.core.sigma_delta.step` fused the same way
(``tests/test_sigma_delta.py`` checks it against ``step`` and against Lava): state (sigma, act, residue)
[B, N] int64 in place, payloads [T, B, N] int32 out.
"""
from __future__ import annotations

import numpy as np

from spikeport.core import loihi

_STATE_MAX = loihi.STATE_MAX
_INT32_HALF = loihi.INT32_SPAN >> 1
_INT32_MASK = loihi.INT32_SPAN - 1


def _kernel(a, u, v, du_factor, dv_factor, threshold, bias, v_min, out, us, vs):  # pragma: no cover (compiled)
    steps, samples, n = out.shape
    keep = us.shape[0] > 0
    for t in range(steps):
        at = a[t if a.shape[0] > 1 else 0]  # one frame for all steps: a static input
        for b in range(samples):
            bb = bias[b if bias.shape[0] > 1 else 0]
            for i in range(n):
                # u = wrap24(wrap32(tz(u * du_factor) + wrap32(a << ACT_SHIFT)))
                p = u[b, i] * du_factor
                uu = (p + ((p >> 63) & loihi.DECAY_MAX)) >> loihi.DECAY_BITS
                x = np.int64(at[b, i]) << loihi.ACT_SHIFT
                x = ((x + _INT32_HALF) & _INT32_MASK) - _INT32_HALF
                uu = ((uu + x + _INT32_HALF) & _INT32_MASK) - _INT32_HALF
                if uu > _STATE_MAX:
                    uu -= 2 * _STATE_MAX
                elif uu <= -_STATE_MAX:
                    uu += 2 * _STATE_MAX
                # v = clip(wrap32(tz(v * dv_factor) + u + bias), v_min, V_LIMIT); spike if v > threshold
                p = v[b, i] * dv_factor
                vv = (p + ((p >> 63) & loihi.DECAY_MAX)) >> loihi.DECAY_BITS
                vv = ((vv + uu + bb[i] + _INT32_HALF) & _INT32_MASK) - _INT32_HALF
                vv = min(max(vv, v_min), loihi.V_LIMIT)
                s = vv > threshold
                if s:
                    vv = 0
                out[t, b, i] = s
                u[b, i] = uu
                v[b, i] = vv
                if keep:
                    us[t, b, i] = uu
                    vs[t, b, i] = vv


SD_SIGMA, SD_DELTA, SD_SIGMA_DELTA = 0, 1, 2
SD_KINDS = {"sigma": SD_SIGMA, "delta": SD_DELTA, "sigma_delta": SD_SIGMA_DELTA}


def _w32(x):  # pragma: no cover (compiled)
    return ((x + _INT32_HALF) & _INT32_MASK) - _INT32_HALF


def _sd_kernel(a, sigma, act, residue, kind, shift, state_exp, threshold, bias, relu, out):  # pragma: no cover
    steps, samples, n = out.shape
    for t in range(steps):
        at = a[t if a.shape[0] > 1 else 0]
        for b in range(samples):
            for i in range(n):
                x = np.int64(at[b, i])
                if kind == SD_SIGMA:
                    sg = _w32(x + sigma[b, i])
                    sigma[b, i] = sg
                    out[t, b, i] = sg
                    continue
                if kind == SD_DELTA:
                    new = _w32(x << shift)
                else:
                    sg = _w32(x + sigma[b, i])
                    sigma[b, i] = sg
                    new = _w32(sg + bias[i])
                    if relu and new < 0:
                        new = 0
                d = _w32(new - act[b, i] + residue[b, i])
                s = d if _w32(abs(d)) >= threshold else 0
                residue[b, i] = _w32(d - s)
                act[b, i] = new
                out[t, b, i] = s >> state_exp


try:
    import numba

    _compiled = numba.njit(cache=True, nogil=True)(_kernel)
    _w32 = numba.njit(cache=True, inline="always")(_w32)
    _sd_compiled = numba.njit(cache=True, nogil=True)(_sd_kernel)
except ImportError:  # numba is optional: the emulator then steps with core.loihi.lif_step / core.sigma_delta.step
    _compiled = _sd_compiled = None

_NO_STATES = np.zeros((0, 0, 0), dtype=np.int64)
FALLBACK_BLOCK = 1 << 15  # neuron states per lif_step call in the numpy fallback


def available() -> bool:
    return _compiled is not None


def run_block(a: np.ndarray, u: np.ndarray, v: np.ndarray, params: loihi.LIFParams, bias: np.ndarray,
              record_states: bool = False):
    """Run ``a.shape[0]`` steps from state (u, v) (updated in place). ``bias``: [N] or [1, N] shared, or
    [B, N] per sample. Returns (spikes [T, B, N] bool, us, vs) with us, vs [T, B, N] int64 when
    ``record_states``, else None."""
    steps, samples, n = a.shape
    out = np.zeros((steps, samples, n), dtype=bool)
    us = np.zeros((steps, samples, n), dtype=np.int64) if record_states else None
    vs = np.zeros_like(us) if record_states else None
    bias = np.asarray(bias, dtype=np.int64)
    bias = np.ascontiguousarray(bias if bias.ndim == 2 else np.broadcast_to(bias, (1, n)))
    if _compiled is None:  # numpy: blocks of samples small enough to stay in cache
        block = max(1, FALLBACK_BLOCK // n)
        for lo in range(0, samples, block):
            sl = slice(lo, lo + block)
            bsl = bias[sl] if bias.shape[0] > 1 else bias
            for t in range(steps):
                out[t, sl], u[sl], v[sl] = loihi.lif_step(u[sl], v[sl], a[t, sl], params, bsl)
                if record_states:
                    us[t, sl], vs[t, sl] = u[sl], v[sl]
        return out, us, vs
    if steps > 1 and a.strides[0] == 0:  # the same input every step (np.broadcast_to): pass it once
        a = a[:1]
    a = np.ascontiguousarray(a, dtype=a.dtype if a.dtype in (np.int32, np.int64) else np.int64)
    _compiled(a, u, v,
              loihi.DECAY_UNITY - (int(params.du) + loihi.DU_OFFSET), loihi.DECAY_UNITY - (int(params.dv) + loihi.DV_OFFSET),
              params.threshold, bias, 0 if params.floor_v else -loihi.V_LIMIT, out,
              us if record_states else _NO_STATES, vs if record_states else _NO_STATES)
    return out, us, vs



def run_sd_block(a: np.ndarray, state: tuple, params, bias: np.ndarray | None = None) -> np.ndarray:
    """Run ``a.shape[0]`` steps of a sigma-delta population (:class:`spikeport.core.sigma_delta.SigmaDeltaParams`)
    from ``state`` = (sigma, act, residue), each [B, N] int64, updated in place. ``a`` [T, B, N] (or [1, B, N]:
    the same every step) integers. Returns payloads [T, B, N] int32."""
    from spikeport.core import sigma_delta

    steps, samples, n = a.shape
    out = np.zeros((steps, samples, n), dtype=np.int32)
    if bias is None:
        bias = params.effective_bias()
    bias = np.ascontiguousarray(np.broadcast_to(np.asarray(bias, dtype=np.int64), (n,)))
    if _sd_compiled is None:
        for t in range(steps):
            p, new = sigma_delta.step(np.asarray(a[t if a.shape[0] > 1 else 0], np.int64), state, params, bias)
            for old, val in zip(state, new):
                old[...] = val
            out[t] = p
        return out
    if steps > 1 and a.strides[0] == 0:
        a = a[:1]
    a = np.ascontiguousarray(a, dtype=a.dtype if a.dtype in (np.int32, np.int64) else np.int64)
    _sd_compiled(a, *state, SD_KINDS[params.kind], params.shift, int(params.state_exp), params.threshold, bias,
                 bool(params.relu), out)
    return out
