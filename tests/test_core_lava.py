"""Property tests: on random small networks with random integer parameters (extremes included), the
batched emulator (core.loihi.lif_step + deploy.linear) equals Lava's fixed_pt models spike for spike
and state for state (u, v read from Lava by Monitors), for every layer kind: dense, sparse, conv
(asymmetric kernels, non-square images, stride, padding; Lava Conv and the Sparse fallback), sum
pool (alone and folded into a conv or a dense), flatten, recurrence and the KLIF v floor.

Each example is one Lava run (about a second), so the example counts are small and fixed
(``derandomize``); ``make test-slow`` runs the same properties with more, random examples.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeport.core import loihi
from spikeport.core.linear import Pool2d
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.deploy import emulator
from tests.lava_states import lava_states

FAST = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Draw:
    """Integer parameters with their extremes: discrete choices from hypothesis, arrays from a seeded rng."""

    def __init__(self, data):
        self.data = data
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    def int(self, lo: int, hi: int, extremes=()) -> int:
        return self.data.draw(st.sampled_from(list(extremes)) | st.integers(lo, hi) if extremes else st.integers(lo, hi))

    def weights(self, shape) -> np.ndarray:
        """int8 weights: uniform, with a share of them at +-127 and 0."""
        w = self.rng.integers(loihi.WEIGHT_MIN, loihi.WEIGHT_MAX + 1, shape)
        pick = self.rng.random(shape)
        w[pick < 0.15] = loihi.WEIGHT_MAX
        w[(pick >= 0.15) & (pick < 0.3)] = loihi.WEIGHT_MIN
        w[(pick >= 0.3) & (pick < 0.4)] = 0
        return w.astype(np.int8)

    def lif(self, n: int, floor_v: bool = False) -> loihi.LIFParams:
        bias = self.rng.integers(loihi.BIAS_MANT_MIN, loihi.BIAS_MANT_MAX + 1, n)
        bias[self.rng.random(n) < 0.5] = 0
        bias[self.rng.random(n) < 0.1] = loihi.BIAS_MANT_MIN
        return loihi.LIFParams(du=self.int(0, 4095, (0, 1, 4094, 4095)), dv=self.int(0, 4095, (0, 1, 4095)),
                               vth=self.int(0, 3000, (0, 1, loihi.VTH_MAX - 1, loihi.VTH_MAX)),
                               bias_mant=bias, bias_exp=self.int(0, 7, (0, 7)), floor_v=floor_v)

    def exp(self) -> int:
        return self.int(-6, 2, (-1, 0))

    def pop(self, name: str, conn: Connection, floor_v: bool = False, recurrent: Connection | None = None):
        shape = conn.out_shape
        return Population(name, conn.shape[0], self.lif(conn.shape[0], floor_v), conn, recurrent,
                          shape=shape if len(shape) == 3 else ())

    def inputs(self, shape, graded: bool) -> tuple[np.ndarray, int]:
        T, B = self.int(2, 6), self.int(1, 3)
        hi = 256 if graded else 2
        x = self.rng.integers(0, hi, (T, B, *shape))
        x[self.rng.random(x.shape) < 0.3] = hi - 1
        return x, T

    def image(self) -> tuple[int, int, int]:
        return self.int(1, 2), self.int(3, 6), self.int(3, 7)  # non-square in general


def check(net: LoihiNet, x: np.ndarray) -> None:
    """Emulator == Lava: spikes, u, v of every population at every step; spikeport's own recording too."""
    emu = emulator.run(net, x, record_states=True)
    lava = lava_states(net, x)
    for pop, s_e, (u_e, v_e), (s_l, u_l, v_l, own) in zip(net.populations, emu.spikes, emu.states, lava):
        np.testing.assert_array_equal(u_e, u_l, err_msg=f"{pop.name}: u")
        np.testing.assert_array_equal(v_e, v_l, err_msg=f"{pop.name}: v")
        np.testing.assert_array_equal(s_e, s_l, err_msg=f"{pop.name}: spikes")
        np.testing.assert_array_equal(own, s_l, err_msg=f"{pop.name}: recorded spikes")


def dense_net(d: Draw) -> tuple[LoihiNet, np.ndarray]:
    n_in, n1, n2 = d.int(1, 12), d.int(1, 8), d.int(1, 5)
    graded = d.data.draw(st.booleans())
    masked = d.data.draw(st.booleans())
    w0 = d.weights((n1, n_in))
    if masked:
        w0[d.rng.random(w0.shape) < 0.5] = 0
    p0 = d.pop("l0", Connection("c0", w0, d.exp(), sparse=masked))
    p1 = d.pop("l1", Connection("c1", d.weights((n2, n1)), d.exp(), sparse=not masked))
    x, T = d.inputs((n_in,), graded)
    return LoihiNet((n_in,), [p0, p1], T, graded), x


def conv_net(d: Draw, floor_v: bool = False) -> tuple[LoihiNet, np.ndarray]:
    c, h, w = d.image()
    kh, kw = d.int(1, min(3, h)), d.int(1, min(3, w))
    c0 = Connection("conv0", d.weights((d.int(1, 3), c, kh, kw)), d.int(-2, 0, (0,)), kind="conv", in_shape=(c, h, w),
                    stride=(d.int(1, 2), d.int(1, 2)), padding=(d.int(0, kh - 1), d.int(0, kw - 1)))
    p0 = d.pop("conv0", c0, floor_v)
    flat = int(np.prod(c0.out_shape))
    p1 = d.pop("fc1", Connection("fc1", d.weights((d.int(1, 4), flat)), d.exp(), in_shape=c0.out_shape), floor_v)
    graded = d.data.draw(st.booleans())
    x, T = d.inputs((c, h, w), graded)
    return LoihiNet((c, h, w), [p0, p1], T, graded), x


def pool_net(d: Draw) -> tuple[LoihiNet, np.ndarray]:
    c, h, w = d.int(1, 2), 2 * d.int(2, 3), 2 * d.int(2, 4)
    c0 = Connection("conv0", d.weights((2, c, 2, 3)), 0, kind="conv", in_shape=(c, h, w), padding=(1, 1))
    k = (d.int(1, 2), d.int(1, 2))
    standalone = Pool2d(k, (d.int(1, 2), d.int(1, 2)), (d.int(0, k[0] // 2), d.int(0, k[1] // 2)))
    c1 = Connection("pool1", np.zeros((0, 0), np.int8), 0, kind="pool", in_shape=c0.out_shape, pool=standalone)
    c1h, c1w = c1.out_shape[1:]
    tile = Pool2d((2, 2), (2, 2)) if c1h % 2 == 0 and c1w % 2 == 0 and c1h > 1 else Pool2d((1, 2), (1, 2))
    if d.data.draw(st.booleans()):  # pool folded into a conv (Lava Conv when it tiles, else Sparse)
        c2 = Connection("conv2", d.weights((2, 2, 2, 1)), 0, kind="conv", in_shape=c1.out_shape, pool=tile,
                        padding=(1, 0), dilation=(d.int(1, 2), 1))
    else:  # pool folded into a dense
        n_in = int(np.prod(Connection("p", np.zeros((0, 0), np.int8), 0, kind="pool", in_shape=c1.out_shape,
                                      pool=tile).out_shape))
        c2 = Connection("fc2", d.weights((3, n_in)), d.exp(), in_shape=c1.out_shape, pool=tile)
    pops = [d.pop("conv0", c0), d.pop("pool1", c1), d.pop("out2", c2)]
    x, T = d.inputs((c, h, w), False)
    return LoihiNet((c, h, w), pops, T, False), x


def recurrent_net(d: Draw) -> tuple[LoihiNet, np.ndarray]:
    n_in, n = d.int(1, 8), d.int(1, 8)
    rec_sparse = d.data.draw(st.booleans())
    w_rec = d.weights((n, n))
    if rec_sparse:
        w_rec[d.rng.random(w_rec.shape) < 0.5] = 0
    rec = Connection("rec0", w_rec, d.exp(), sparse=rec_sparse)
    p0 = d.pop("l0", Connection("c0", d.weights((n, n_in)), d.exp()), recurrent=rec)
    p1 = d.pop("l1", Connection("c1", d.weights((3, n)), d.exp()))
    graded = d.data.draw(st.booleans())
    x, T = d.inputs((n_in,), graded)
    return LoihiNet((n_in,), [p0, p1], T, graded), x


@FAST
@given(st.data())
def test_dense_and_sparse_equal_lava(data):
    check(*dense_net(Draw(data)))


@FAST
@given(st.data())
def test_conv_and_flatten_equal_lava(data):
    check(*conv_net(Draw(data)))


@FAST
@given(st.data())
def test_sum_pools_equal_lava(data):
    check(*pool_net(Draw(data)))


@FAST
@given(st.data())
def test_recurrent_equals_lava(data):
    check(*recurrent_net(Draw(data)))


@FAST
@given(st.data())
def test_floored_v_equals_lava(data):
    check(*conv_net(Draw(data), floor_v=True))


@pytest.mark.slow
@SLOW
@given(st.data(), st.sampled_from(["dense", "conv", "pool", "recurrent", "floor"]))
def test_every_kind_equals_lava_many_examples(data, kind):
    d = Draw(data)
    build = {"dense": dense_net, "conv": conv_net, "pool": pool_net, "recurrent": recurrent_net,
             "floor": lambda d: conv_net(d, floor_v=True)}[kind]
    check(*build(d))


def test_conv_output_wraps_at_24_bits_like_lava():
    """Lava's Conv ignores weight_exp, does not clip weights and wraps (it calls it a clamp) its output
    to signed 24 bits: a conv with weights far beyond 8 bits, on a non-square image, checked on u."""
    rng = np.random.default_rng(3)
    w = rng.integers(-40_000, 40_000, (2, 2, 3, 2))  # asymmetric 3 x 2 kernel
    conn = Connection("big", w, 0, kind="conv", in_shape=(2, 5, 7), stride=(2, 1), padding=(1, 0))
    assert conn.lava_process == "conv"
    pop = Population("p", conn.shape[0], loihi.LIFParams(du=4095, dv=4095, vth=loihi.VTH_MAX), conn,
                     shape=conn.out_shape)
    x = rng.integers(0, 256, (3, 2, 2, 5, 7))
    net = LoihiNet((2, 5, 7), [pop], 3, graded_input=True)
    acc = conn.apply(x.reshape(6, -1))
    raw = np.rint(np.einsum("...i,oi->...o", x.reshape(6, -1).astype(np.float64), conn.to_matrix().toarray()))
    assert np.abs(raw).max() > 2**23 and (acc != raw).any()  # the wrap really happens here
    check(net, x)
