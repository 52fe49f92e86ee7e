"""The emulator's fast paths against plain integer arithmetic (no Lava, so many examples):
the compiled LIF kernel against ``core.loihi.lif_step`` on extreme states and inputs, and the float
pooling / convolution / dense products against int64 products with the unrolled matrices."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeport.core import linear, loihi
from spikeport.core.linear import Pool2d
from spikeport.core.net import Connection
from spikeport.deploy import kernels

EXAMPLES = settings(max_examples=60, deadline=None, database=None)


@pytest.mark.skipif(not kernels.available(), reason="numba not installed: the emulator uses lif_step itself")
@EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), du=st.sampled_from([0, 1, 2047, 4094, 4095]), dv=st.sampled_from([0, 1, 300, 4095]),
       vth=st.sampled_from([0, 1, 500, loihi.VTH_MAX]), bias_exp=st.integers(0, 7), floor_v=st.booleans(),
       scale=st.sampled_from([1, 2**10, 2**17, 2**20, 2**26]))
def test_kernel_equals_lif_step(seed, du, dv, vth, bias_exp, floor_v, scale):
    """Every wrap and clip is reached: inputs up to 2**26 (a << 6 past int32), states at the limits."""
    rng = np.random.default_rng(seed)
    T, B, N = 6, 3, 17
    a = rng.integers(-scale, scale + 1, (T, B, N))
    a[:, :, 0] = scale
    bias = rng.integers(loihi.BIAS_MANT_MIN, loihi.BIAS_MANT_MAX + 1, N)
    params = loihi.LIFParams(du=du, dv=dv, vth=vth, bias_mant=bias, bias_exp=bias_exp, floor_v=floor_v)
    u0 = rng.integers(-loihi.STATE_MAX, loihi.STATE_MAX + 1, (B, N))
    v0 = rng.integers(-loihi.V_LIMIT, loihi.V_LIMIT + 1, (B, N))
    u, v = u0.copy(), v0.copy()
    out, us, vs = kernels.run_block(a, u, v, params, params.effective_bias(), record_states=True)
    ru, rv = u0, v0
    for t in range(T):
        s, ru, rv = loihi.lif_step(ru, rv, a[t], params)
        np.testing.assert_array_equal(out[t], s)
        np.testing.assert_array_equal(us[t], ru)
        np.testing.assert_array_equal(vs[t], rv)
    np.testing.assert_array_equal(u, ru)
    np.testing.assert_array_equal(v, rv)


def test_kernel_takes_a_static_input_once():
    rng = np.random.default_rng(1)
    frame = rng.integers(-300, 300, (1, 4, 9))
    params = loihi.LIFParams(du=100, dv=200, vth=10)
    zeros = lambda: np.zeros((4, 9), np.int64)  # noqa: E731
    full, _, _ = kernels.run_block(np.repeat(frame, 7, axis=0), zeros(), zeros(), params, 0)
    once, _, _ = kernels.run_block(np.broadcast_to(frame, (7, 4, 9)), zeros(), zeros(), params, 0)
    np.testing.assert_array_equal(full, once)


@EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), c=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 9),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       dil=st.integers(1, 2), groups=st.sampled_from([1, 2]), graded=st.booleans(), pool=st.booleans())
def test_conv_and_pool_equal_integer_products(seed, c, h, w, kh, kw, stride, dil, groups, graded, pool):
    rng = np.random.default_rng(seed)
    c_in, c_out = c * groups, 2 * groups
    geom = Pool2d((2, 2), (2, 2)) if pool and h >= 2 and w >= 2 else None
    hp, wp = (h // 2, w // 2) if geom else (h, w)
    if (kh - 1) * dil + 1 > hp + 2 or (kw - 1) * dil + 1 > wp + 2:
        return
    conn = Connection("c", rng.integers(-127, 128, (c_out, c, kh, kw)).astype(np.int8), 0, kind="conv",
                      in_shape=(c_in, h, w), pool=geom, stride=stride, padding=(1, 1), dilation=(dil, dil), groups=groups)
    x = rng.integers(0, 256 if graded else 2, (5, c_in * h * w))
    got, _ = linear.forward(x, conn.in_shape, pool=geom, kind="conv", weight=conn.weight, stride=stride,
                            padding=(1, 1), dilation=(dil, dil), groups=groups)
    want = x.astype(np.int64) @ conn.to_matrix().toarray().T
    np.testing.assert_array_equal(got, want)


def test_dense_paths_are_exact_at_the_float32_limit():
    """Sums just below and above 2**24 (float32 and float64 paths) equal the int64 product."""
    rng = np.random.default_rng(2)
    w = np.full((3, 600), 127, dtype=np.int64)
    for hi in (220, 256):  # 600 * 127 * 220 < 2**24 < 600 * 127 * 256
        x = rng.integers(hi - 5, hi, (4, 600))
        got, bound = linear.forward(x, (600,), weight=w)
        np.testing.assert_array_equal(got, x @ w.T)
        assert (bound < 2**24) == (hi == 220)


def test_folded_pool_kernel_equals_pool_then_conv():
    """Lava's Conv gets the pool folded into the kernel: the same integer map as pool then conv."""
    rng = np.random.default_rng(3)
    conn = Connection("c", rng.integers(-127, 128, (3, 2, 3, 2)).astype(np.int8), 0, kind="conv", in_shape=(2, 8, 6),
                      pool=Pool2d((2, 2), (2, 2)), padding=(1, 0), stride=(1, 1))
    args = conn.lava_conv()
    w_fold = args["weight"].transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]  # back to torch layout
    folded = Connection("f", w_fold, 0, kind="conv", in_shape=(2, 8, 6), stride=args["stride"][::-1],
                        padding=args["padding"][::-1])
    assert np.abs(w_fold).max() <= 127 and folded.out_shape == conn.out_shape
    np.testing.assert_array_equal(folded.to_matrix().toarray(), conn.to_matrix().toarray())



@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9), st.integers(2, 3))
def test_training_sum_pool_equals_deploy_pool_matrix(seed, c, h, w, k):
    """The training layers' sum pool (``avg_pool2d`` with divisor 1 for floats, a strided reduction for
    int64) equals the deploy side's 0/1 pool matrix, for spikes in float32 and int64 and graded float64,
    including maps that the window does not tile (trailing rows and columns dropped)."""
    import torch

    from spikeport.train.layers import Geometry, _sum_pool

    if h < k or w < k:
        return
    rng = np.random.default_rng(seed)
    spikes = rng.random((4, c * h * w)) < 0.4
    graded = rng.integers(-50, 50, (4, c * h * w))
    pm = linear.pool_matrix((c, h, w), Pool2d(kernel=(k, k), stride=(k, k), padding=(0, 0)))
    geom = Geometry(in_shape=(c, h, w), pool=k)
    for x, dtype in ((spikes, torch.float32), (spikes, torch.int64), (graded, torch.float64), (graded, torch.int64)):
        got = _sum_pool(torch.from_numpy(x.astype(np.float64)).to(dtype), geom)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.reshape(4, -1).numpy().astype(np.int64), (pm @ x.astype(np.int64).T).T)
