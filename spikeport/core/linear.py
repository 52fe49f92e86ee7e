"""The integer linear maps between populations: sum pooling, 2-D convolution and dense products.

Layout. spikeport keeps every tensor in torch order: a sample is ``[C, H, W]``, flattened C-major
(index ``c*H*W + y*W + x``), and a conv weight is ``[C_out, C_in/groups, kh, kw]`` applied as a
cross-correlation (torch's ``conv2d``). Lava's Conv works in ``(X, Y, C) = (W, H, C)`` with a weight
``[C_out, kx, ky, C_in/groups]`` and computes a true convolution; :func:`lava_conv_params` converts.

Exactness. Inputs and weights are integers, so a float computation is exact while every partial sum
stays below 2**24 (float32) or 2**53 (float64): the bound max|x| * window * max_row sum|w| picks the
type; results are rounded back to int64. Only direct algorithms are used (BLAS GEMM, torch's CPU
pooling and direct convolution; no Winograd or FFT), and ``tests/test_kernels.py`` checks them against
integer products.

Folding. A sum pool feeding a conv is folded into one Lava Conv when that is exact: the pool's windows
tile the input (stride = kernel, no padding, the kernel divides H and W). Then

    conv(sumpool(x), w; stride s, padding p, dilation d)
        = conv(x, w_up; stride s*kp, padding p*kp, dilation 1)

with ``w_up[m*d*kp + a] = w[m]`` for ``0 <= a < kp`` (per spatial axis) and zeros elsewhere: every
folded weight is one of the original int8 weights, so nothing is rounded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

EXACT_FLOAT_LIMIT = 2**53


def pair(val) -> tuple[int, int]:
    """An int or a 1- or 2-element sequence as an (H, W) pair of Python ints."""
    arr = np.asarray(val, dtype=np.int64).ravel()
    if arr.size not in (1, 2):
        raise ValueError(f"expected one or two integers, got {val!r}")
    return int(arr[0]), int(arr[-1])


@dataclass(frozen=True)
class Pool2d:
    """A 2-D sum pool (per channel): kernel, stride, padding as (H, W) pairs of integers."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        for name in ("kernel", "stride", "padding"):
            object.__setattr__(self, name, pair(getattr(self, name)))

    def tiles(self, h: int, w: int) -> bool:
        """True when the windows tile an h x w input exactly (no overlap, no padding, nothing dropped)."""
        return (self.stride == self.kernel and self.padding == (0, 0)
                and h % self.kernel[0] == 0 and w % self.kernel[1] == 0)


def out_hw(h: int, w: int, kernel, stride, padding, dilation=(1, 1)) -> tuple[int, int]:
    """Output height and width of a pool or conv (torch's formula, floor)."""
    ho = (h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return int(ho), int(wo)


FLOAT32_EXACT_LIMIT = 2**24


def peak(x: np.ndarray) -> float:
    """max |x| (1 for spikes, without a pass over them)."""
    if x.dtype == bool:
        return 1.0
    return float(max(x.max(initial=0), -x.min(initial=0))) if x.size else 0.0


def exact_float_dtype(bound: float):
    """The float type in which integer sums bounded by ``bound`` are exact, in any order and with FMA:
    float32 below 2**24, float64 below 2**53; None beyond (never the case for 8-bit weights and inputs)."""
    if bound < FLOAT32_EXACT_LIMIT:
        return np.float32
    return np.float64 if bound < EXACT_FLOAT_LIMIT else None


def row_abs_sum(weight: np.ndarray) -> float:
    """max over outputs of sum |w| (weight [out, ...])."""
    w = np.abs(np.asarray(weight, dtype=np.float64))
    return float(w.reshape(len(w), -1).sum(axis=1).max(initial=0)) if w.size else 0.0


def forward(x: np.ndarray, in_shape: tuple[int, ...], *, pool: Pool2d | None = None, kind: str = "dense",
            weight: np.ndarray | None = None, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
            groups: int = 1) -> tuple[np.ndarray, float]:
    """x [M, in] integers -> ([M, out] int64, bound on |out|): the optional sum pool (zero padding), then
    a dense product (``kind="dense"``, weight [out, pooled size], C-major flatten), a cross-correlation
    (``"conv"``, weight [C_out, C/groups, kh, kw]) or nothing (``"pool"``). Exact (module docstring):
    every value is an integer-valued float, converted without rounding."""
    import torch
    import torch.nn.functional as F

    m = x.shape[0]
    bound = peak(x) * (float(np.prod(pool.kernel)) if pool is not None else 1.0) * \
        (row_abs_sum(weight) if kind != "pool" else 1.0)
    dtype = exact_float_dtype(bound)
    if dtype is None:
        raise ValueError("integer sums may reach 2**53; a float product would not be exact")
    if kind == "dense" and pool is None:  # numpy BLAS
        return (x.astype(dtype) @ np.asarray(weight, dtype).T).astype(np.int64), bound
    h = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype)).reshape(m, *in_shape)
    if pool is not None:
        h = F.avg_pool2d(h, pool.kernel, pool.stride, pool.padding, divisor_override=1)
    if kind == "conv":
        h = F.conv2d(h, torch.from_numpy(np.asarray(weight, dtype)), stride=tuple(stride), padding=tuple(padding),
                     dilation=tuple(dilation), groups=int(groups))
    elif kind == "dense":
        h = h.reshape(m, -1) @ torch.from_numpy(np.asarray(weight, dtype)).t()
    return h.reshape(m, -1).to(torch.int64).numpy(), bound


# --- unrolled matrices (CHW order on both sides) ---------------------------------------------------
def pool_matrix(in_shape: tuple[int, int, int], pool: Pool2d) -> sparse.csr_matrix:
    """The sum pool as a 0/1 matrix [C*Ho*Wo, C*H*W]."""
    c, h, w = in_shape
    ho, wo = out_hw(h, w, pool.kernel, pool.stride, pool.padding)
    ch, oy, ox, ky, kx = np.meshgrid(np.arange(c), np.arange(ho), np.arange(wo), np.arange(pool.kernel[0]),
                                     np.arange(pool.kernel[1]), indexing="ij")
    iy = oy * pool.stride[0] - pool.padding[0] + ky
    ix = ox * pool.stride[1] - pool.padding[1] + kx
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = ((ch * ho + oy) * wo + ox)[ok]
    cols = ((ch * h + iy) * w + ix)[ok]
    return sparse.csr_matrix((np.ones(len(rows), np.int64), (rows, cols)), shape=(c * ho * wo, c * h * w))


def conv_matrix(weight: np.ndarray, in_shape: tuple[int, int, int], stride, padding, dilation,
                groups: int) -> sparse.csr_matrix:
    """The convolution as a matrix [C_out*Ho*Wo, C*H*W] (int64; taps that fall on padding are dropped)."""
    c, h, w = in_shape
    c_out, c_grp, kh, kw = weight.shape
    ho, wo = out_hw(h, w, (kh, kw), stride, padding, dilation)
    oc, oy, ox, ic, ky, kx = np.meshgrid(np.arange(c_out), np.arange(ho), np.arange(wo), np.arange(c_grp),
                                         np.arange(kh), np.arange(kw), indexing="ij")
    iy = oy * stride[0] - padding[0] + ky * dilation[0]
    ix = ox * stride[1] - padding[1] + kx * dilation[1]
    chan = (oc // (c_out // groups)) * c_grp + ic
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    vals = np.asarray(weight, np.int64)[oc, ic, ky, kx][ok]
    rows = ((oc * ho + oy) * wo + ox)[ok]
    cols = ((chan * h + iy) * w + ix)[ok]
    mat = sparse.csr_matrix((vals, (rows, cols)), shape=(c_out * ho * wo, c * h * w))
    mat.eliminate_zeros()
    return mat


def fold_pool_into_kernel(weight: np.ndarray, pool: Pool2d, dilation) -> np.ndarray:
    """Conv weight [C_out, C_g, kh, kw] after a tiling sum pool -> the equivalent kernel on the unpooled
    input (see the module docstring); the caller multiplies stride and padding by the pool kernel."""
    c_out, c_grp, kh, kw = weight.shape
    ph, pw = pool.kernel
    step_h, step_w = dilation[0] * ph, dilation[1] * pw
    out = np.zeros((c_out, c_grp, (kh - 1) * step_h + ph, (kw - 1) * step_w + pw), dtype=np.int64)
    for my in range(kh):
        for mx in range(kw):
            out[:, :, my * step_h: my * step_h + ph, mx * step_w: mx * step_w + pw] += \
                np.asarray(weight[:, :, my:my + 1, mx:mx + 1], np.int64)
    return out


def to_lava_kernel(weight: np.ndarray) -> np.ndarray:
    """torch conv weight [C_out, C_g, kh, kw] (cross-correlation) -> Lava's [C_out, kx, ky, C_g]
    (true convolution): swap to (x, y) order and flip both spatial axes."""
    return np.ascontiguousarray(np.asarray(weight).transpose(0, 3, 2, 1)[:, ::-1, ::-1, :])
