"""The emulator's compiled sparse products (``deploy.products``) against the straightforward paths, on
random connections and random nets (no Lava, so many examples): every product equals
:meth:`Connection.apply` and the int64 product with the unrolled matrix, and the emulator's spikes and
states with the compiled products equal those of a plain loop of ``core.loihi.lif_step`` over int64
matrix products. Edge cases: 24-bit current wrap, voltage clip, negative ``weight_exp`` (floor shift),
graded input, recurrent, conv with padding / stride / dilation / groups, overlapping and padded pools,
Lava Conv's 24-bit output wrap, sums past 2**31 (the int64 fallback)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeport.core import loihi
from spikeport.core.linear import Pool2d
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.deploy import emulator, products
from spikeport.errors import SpikeportError

pytestmark = pytest.mark.skipif(not products.available(), reason="numba not installed: the emulator uses Connection.apply")
EXAMPLES = settings(max_examples=int(__import__("os").environ.get("SP_EX", 50)), deadline=None, database=None)


def _matrix_product(conn: Connection, x: np.ndarray) -> np.ndarray:
    """The independent reference: int64 product with the unrolled matrix, then Lava's exponent or wrap.
    Lava's Dense sums graded inputs in int32 (``weights.dot``), so a sum of 2**31 or more wraps before the
    exponent (tests/test_netx_blocks.py checks it on Lava)."""
    acc = x.astype(np.int64) @ conn.to_matrix().toarray().T
    if conn.lava_process == "conv":
        return loihi.wrap_conv_output(acc)
    wrap = lambda v: ((v + 2**31) % 2**32) - 2**31  # noqa: E731
    return wrap(loihi.shift_exp(wrap(acc), conn.weight_exp))


def _random_conn(rng, kind: str, graded: bool):
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 9)), int(rng.integers(3, 9))
    pool = None
    if rng.random() < 0.5:  # tiling, overlapping or padded pools
        k = int(rng.integers(1, 3))
        s = int(rng.integers(1, k + 1))
        pool = Pool2d((k, k), (s, s), (int(rng.integers(0, k // 2 + 1)),) * 2)
    if kind == "pool":
        return Connection("p", np.zeros((0, 0), np.int8), 0, kind="pool", in_shape=(c, h, w),
                          pool=pool or Pool2d((2, 2), (2, 2)))
    exp = int(rng.choice([-5, -1, 0, 0, 2]))
    if kind == "dense":
        n_in = c * h * w
        if pool is not None:
            n_in = int(np.prod(Connection("t", np.zeros((1, 1)), 0, in_shape=(c, h, w), pool=pool).pooled_shape))
        weight = rng.integers(-127, 128, (int(rng.integers(1, 40)), n_in)).astype(np.int8)
        return Connection("d", weight, exp, in_shape=(c, h, w) if pool is not None else (), pool=pool)
    groups = int(rng.choice([1, 1, c])) if c > 1 else 1
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    c_out = groups * int(rng.integers(1, 20))  # outputs per group from 1 to past LANES
    weight = rng.integers(-127, 128, (c_out, c // groups, kh, kw)).astype(np.int8)
    return Connection("c", weight, exp, kind="conv", in_shape=(c, h, w), pool=pool, padding=tuple(rng.integers(0, 2, 2)),
                      stride=tuple(rng.integers(1, 3, 2)), dilation=tuple(rng.integers(1, 3, 2)), groups=groups)


@EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["dense", "conv", "pool"]), graded=st.booleans(),
       big=st.booleans())
def test_products_equal_apply_and_matrix_product(seed, kind, graded, big):
    rng = np.random.default_rng(seed)
    try:
        conn = _random_conn(rng, kind, graded)
        conn.out_shape  # noqa: B018 (a kernel larger than the padded input raises in Connection)
    except ValueError:
        return
    if min(conn.out_shape) <= 0:
        return
    n_in = conn.shape[1]
    density = rng.choice([0.02, 0.1, 0.25])
    if graded:  # graded values; ``big`` passes 2**24 (Lava Conv wrap) and 2**31 (the int64 fallback)
        hi = 2**22 if big else 256
        x = np.where(rng.random((7, n_in)) < density, rng.integers(-hi, hi, (7, n_in)), 0)
    else:
        x = rng.random((7, n_in)) < density
    plan = products.Plan.of(conn)
    if conn.lava_process == "conv" and np.abs(x.astype(np.int64) @ conn.to_matrix().toarray().T).max(initial=0) >= 2**31:
        with pytest.raises(ValueError, match="undefined"):  # Lava casts a float sum beyond int32: refused
            plan.apply(x)
        return
    got = plan.apply(x)
    np.testing.assert_array_equal(got, conn.apply(x))
    np.testing.assert_array_equal(got, _matrix_product(conn, x))


def _reference_run(net: LoihiNet, x: np.ndarray):
    """Plain loop: int64 matrix products and core.loihi.lif_step, step by step, no batching over T."""
    T, B = x.shape[:2]
    layer_in = x.reshape(T, B, -1).astype(np.int64)
    spikes = []
    for pop in net.populations:
        u = np.zeros((B, pop.size), np.int64)
        v = np.zeros_like(u)
        s = np.zeros((B, pop.size), bool)
        out = np.zeros((T, B, pop.size), bool)
        for t in range(T):
            a = _matrix_product(pop.input, layer_in[t]) + pop.line_current()
            if pop.recurrent is not None:
                a = a + _matrix_product(pop.recurrent, s)
            s, u, v = loihi.lif_step(u, v, a, pop.lif)
            out[t] = s
        spikes.append(out)
        layer_in = out.astype(np.int64)
    return spikes


@EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), recurrent=st.booleans(), graded=st.booleans(), extreme=st.booleans())
def test_emulator_with_compiled_products_equals_plain_loop(seed, recurrent, graded, extreme):
    """Random conv -> pool -> dense nets; ``extreme`` drives currents past the 24-bit wrap and v into the
    clip (large graded input, du = 0: the current never decays, zero threshold and large bias)."""
    rng = np.random.default_rng(seed)
    T, B, shape = 6, 5, (2, 8, 7)
    hi = 2**15 if extreme else (256 if graded else 2)
    x = rng.integers(0, hi, (T, B, *shape)) * (rng.random((T, B, *shape)) < 0.3)
    lif = lambda n: loihi.LIFParams(du=0 if extreme else int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),  # noqa: E731
                                    vth=int(rng.integers(0, 50 if extreme else 2000)),
                                    bias_mant=rng.integers(-4096, 4096, n) if extreme else 0,
                                    bias_exp=int(rng.integers(0, 8)) if extreme else 0)
    c0 = Connection("c0", rng.integers(-127, 128, (4, 1, 3, 3)).astype(np.int8), int(rng.choice([-3, 0])),
                    kind="conv", in_shape=shape, padding=(1, 1), stride=(1, 2), groups=2)
    p0 = Population("c0", c0.shape[0], lif(c0.shape[0]), c0, shape=c0.out_shape)
    pl = Connection("pl", np.zeros((0, 0), np.int8), 0, kind="pool", in_shape=c0.out_shape, pool=Pool2d((2, 2), (1, 1), (1, 1)))
    p1 = Population("pl", pl.shape[0], lif(pl.shape[0]), pl, shape=pl.out_shape)
    d = Connection("d", rng.integers(-127, 128, (9, pl.shape[0])).astype(np.int8), -1, in_shape=pl.out_shape)
    rec = Connection("r", rng.integers(-127, 128, (9, 9)).astype(np.int8), 0) if recurrent else None
    p2 = Population("d", 9, lif(9), d, recurrent=rec)
    net = LoihiNet(shape, [p0, p1, p2], T, graded_input=graded or extreme)
    fast = emulator.run(net, x, record_states=True)
    slow = emulator.run(net, x, record_states=True, fast=False)
    for a, b, ref in zip(fast.spikes, slow.spikes, _reference_run(net, x)):
        np.testing.assert_array_equal(a, ref)
        np.testing.assert_array_equal(b, ref)
    for (ua, va), (ub, vb) in zip(fast.states, slow.states):
        np.testing.assert_array_equal(ua, ub)
        np.testing.assert_array_equal(va, vb)


def test_chunked_run_equals_one_chunk(monkeypatch):
    """Samples split over several chunks (written into the run's arrays) give the same spikes and states."""
    rng = np.random.default_rng(3)
    conn = Connection("d", rng.integers(-127, 128, (12, 20)).astype(np.int8), 0)
    net = LoihiNet((20,), [Population("d", 12, loihi.LIFParams(du=100, dv=200, vth=30), conn)], 5, graded_input=False)
    x = rng.random((5, 23, 20)) < 0.3
    whole = emulator.run(net, x, record_states=True)
    monkeypatch.setattr(emulator, "CHUNK_ELEMENTS", 5 * 20 * 4)  # 4 samples per chunk: 6 chunks
    parts = emulator.run(net, x, record_states=True)
    np.testing.assert_array_equal(parts.spikes[0], whole.spikes[0])
    np.testing.assert_array_equal(parts.states[0][0], whole.states[0][0])
    np.testing.assert_array_equal(parts.states[0][1], whole.states[0][1])
    assert whole.spikes[0].any() and not whole.spikes[0].all()


def test_threaded_chunks_equal_the_plain_loop(monkeypatch):
    """A batch split across threads (uneven last chunk, more chunks than threads) gives the plain loop's
    spikes and the one-thread run's states; a malformed thread count is one line."""
    rng = np.random.default_rng(5)
    conn = Connection("d", rng.integers(-127, 128, (12, 20)).astype(np.int8), 0)
    net = LoihiNet((20,), [Population("d", 12, loihi.LIFParams(du=100, dv=200, vth=30), conn)], 5, graded_input=False)
    x = rng.random((5, 71, 20)) < 0.3
    monkeypatch.setenv(emulator.THREADS_ENV, "1")
    one = emulator.run(net, x, record_states=True)
    monkeypatch.setenv(emulator.THREADS_ENV, "3")
    assert emulator.threads() == 3
    monkeypatch.setattr(emulator, "CHUNK_ELEMENTS", 5 * 20 * 10)  # 10 samples per chunk: 8 chunks on 3 threads
    many = emulator.run(net, x, record_states=True)
    np.testing.assert_array_equal(many.spikes[0], _reference_run(net, x)[0])
    np.testing.assert_array_equal(many.spikes[0], one.spikes[0])
    np.testing.assert_array_equal(many.states[0][1], one.states[0][1])
    assert one.spikes[0].any() and not one.spikes[0].all()
    monkeypatch.setenv(emulator.THREADS_ENV, "two")
    with pytest.raises(SpikeportError, match="SPIKEPORT_THREADS='two'"):
        emulator.run(net, x)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_disjoint_pool_folded_into_the_map(kind):
    """A 2x2 / stride-2 pool on a 3 x 7 x 9 input (the last row and column dropped) folded into the next
    dense or conv map: one pass, the same integer sums as the unrolled matrix; an overlapping pool is not folded."""
    rng = np.random.default_rng(11)
    shape, pool = (3, 7, 9), Pool2d((2, 2), (2, 2))
    if kind == "dense":
        conn = Connection("d", rng.integers(-127, 128, (13, 3 * 3 * 4)).astype(np.int8), -1, in_shape=shape, pool=pool)
    else:
        conn = Connection("c", rng.integers(-127, 128, (5, 3, 3, 3)).astype(np.int8), 0, kind="conv", in_shape=shape,
                          pool=pool, padding=(1, 1))
    plan = products.Plan.of(conn)
    assert plan.pool_geom is None and plan.pool_area == 4
    for x in (rng.random((9, 189)) < 0.2, np.where(rng.random((9, 189)) < 0.2, rng.integers(-255, 256, (9, 189)), 0)):
        np.testing.assert_array_equal(plan.apply(x), _matrix_product(conn, x))
    overlapping = Connection("c", rng.integers(-127, 128, (5, 3, 3, 3)).astype(np.int8), 0, kind="conv",
                             in_shape=shape, pool=Pool2d((2, 2), (1, 1)))
    assert products.Plan.of(overlapping).pool_geom is not None
