"""Reading NIR graphs with conv, pooling, flatten, recurrent and KLIF layers, written and read back
through ``nir.write`` / ``nir.read``; and graphs Loihi cannot run exactly, each refused with an error
that names the node and says why."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeport.core import loihi
from spikeport.deploy import emulator
from spikeport.errors import SpikeportError
from spikeport.nirfmt.load import load_nir

RNG = np.random.default_rng(0)


def lif(shape, floor_v=False, **meta_extra):
    n = int(np.prod(shape))
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    meta = {"loihi": {"du": 2000, "dv": 300, "vth": 40, "bias_mant": np.zeros(n, np.int64), "bias_exp": 0,
                      "floor_v": floor_v, **meta_extra}}
    return nir.CubaLIF(tau_syn=full(2e-3), tau_mem=full(1e-2), r=full(10.0), v_leak=full(0.0), v_threshold=full(1.0),
                       v_reset=full(0.0), w_in=full(2.0), metadata=meta)


def affine(n_out, n_in, weight=None, exp=0, **extra):
    q = RNG.integers(-127, 128, (n_out, n_in)) if weight is None else np.asarray(weight)
    return nir.Affine(weight=q * 0.01, bias=np.zeros(n_out), metadata={"loihi": {"weight": q, "weight_exp": exp, **extra}})


def conv(c_out, c_in, k=(3, 2), stride=1, padding=1, hw=(6, 8), weight=None):
    q = RNG.integers(-127, 128, (c_out, c_in, *k)) if weight is None else np.asarray(weight)
    return nir.Conv2d(input_shape=hw, weight=q * 0.01, stride=stride, padding=padding, dilation=1, groups=1,
                      bias=np.zeros(c_out), metadata={"loihi": {"weight": q, "weight_exp": 0}})


def sumpool(k=2):
    return nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([k, k]), padding=np.array([0, 0]))


def graph(nodes, edges, in_shape, tmp_path, name="g.nir"):
    nodes = {"input": nir.Input(input_type={"input": np.array(in_shape)}), **nodes,
             "output": nir.Output(output_type={"output": np.array([1])})}
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False, metadata={"spikeport": {
        "time_steps": 4, "graded_input": False, "input_shape": np.array(in_shape)}})
    path = tmp_path / name
    nir.write(str(path), g)
    return path


def conv_chain(tmp_path, pool_node=None, floor_v=False):
    """input (1, 6, 8) -> conv(2, k 3x2, pad 1) -> lif (2, 6, 9) -> [pool] -> flatten -> fc -> lif."""
    pooled = (2, 3, 4) if pool_node is not None else (2, 6, 9)
    nodes = {"c0": conv(2, 1), "l0": lif((2, 6, 9), floor_v), "flat": nir.Flatten(input_type={"input": np.array(pooled)},
             start_dim=0), "fc": affine(3, int(np.prod(pooled))), "l1": lif((3,))}
    edges = [("input", "c0"), ("c0", "l0"), ("flat", "fc"), ("fc", "l1"), ("l1", "output")]
    if pool_node is not None:
        nodes["pool"] = pool_node
        edges += [("l0", "pool"), ("pool", "flat")]
    else:
        edges.append(("l0", "flat"))
    return graph(nodes, edges, (1, 6, 8), tmp_path)


def test_conv_pool_flatten_graph_loads_and_runs(tmp_path):
    net = load_nir(conv_chain(tmp_path, sumpool(2)))
    c0, fc = net.populations[0].input, net.populations[1].input
    assert (c0.kind, c0.out_shape, c0.lava_process) == ("conv", (2, 6, 9), "conv")
    assert (fc.kind, fc.pool.kernel, fc.shape) == ("dense", (2, 2), (3, 2 * 6 * 9))  # pool folded into the dense
    assert net.populations[0].shape == (2, 6, 9)
    x = RNG.integers(0, 2, (4, 3, 1, 6, 8))
    assert [s.shape for s in emulator.run(net, x).spikes] == [(4, 3, 108), (4, 3, 3)]


def test_avgpool_needs_the_as_sum_mark(tmp_path):
    avg = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    with pytest.raises(SpikeportError, match="node 'pool'.*AvgPool2d divides"):
        load_nir(conv_chain(tmp_path, avg))
    avg.metadata = {"loihi": {"as_sum": True}}
    net = load_nir(conv_chain(tmp_path, avg))
    assert net.populations[1].input.pool.kernel == (2, 2)


def test_recurrent_and_floored_populations(tmp_path):
    nodes = {"fc": affine(4, 5), "l0": lif((4,), floor_v=True), "rec": affine(4, 4, exp=-2), "out": affine(2, 4),
             "l1": lif((2,))}
    edges = [("input", "fc"), ("fc", "l0"), ("l0", "rec"), ("rec", "l0"), ("l0", "out"), ("out", "l1"), ("l1", "output")]
    net = load_nir(graph(nodes, edges, (5,), tmp_path))
    p0 = net.populations[0]
    assert p0.recurrent is not None and p0.recurrent.weight_exp == -2 and p0.lif.floor_v
    assert not net.populations[1].lif.floor_v


def test_masked_affine_deploys_as_sparse(tmp_path):
    mask = RNG.random((3, 5)) < 0.5
    nodes = {"fc": affine(3, 5, mask=mask), "l0": lif((3,))}
    net = load_nir(graph(nodes, [("input", "fc"), ("fc", "l0"), ("l0", "output")], (5,), tmp_path))
    conn = net.populations[0].input
    assert conn.lava_process == "sparse" and not conn.weight[~mask].any()


def bad_graphs():
    """(name, builder(tmp_path) -> path, node named in the error, reason fragment)."""
    def chain(mid_nodes, in_shape=(5,)):
        def build(tmp):
            names = list(mid_nodes)
            edges = list(zip(["input"] + names, names + ["output"]))
            return graph(mid_nodes, edges, in_shape, tmp)
        return build

    wide = np.full((3, 5), 200)
    yield "weights beyond 8 bits", chain({"fc": affine(3, 5, weight=wide), "l0": lif((3,))}), "fc", "8 bits"
    yield "conv weights beyond 8 bits", chain({"c": conv(1, 1, weight=np.full((1, 1, 3, 2), -300)),
                                              "l0": lif((1, 6, 9))}, (1, 6, 8)), "c", "8 bits"
    yield "delay", chain({"d": nir.Delay(delay=np.ones(5)), "fc": affine(3, 5), "l0": lif((3,))}), "d", "delay"
    yield "subtractive reset", chain({"fc": affine(3, 5), "l0": lif((3,), reset="subtract")}), "l0", "subtraction"
    yield "unknown node", chain({"fc": affine(3, 5), "li": nir.LI(tau=np.ones(3), r=np.ones(3),
                                                                    v_leak=np.zeros(3))}), "li", "LI cannot"
    yield "flatten of part of a sample", chain({"c": conv(2, 1), "l0": lif((2, 6, 9)), "f": nir.Flatten(
        input_type={"input": np.array([2, 6, 9])}, start_dim=2), "fc": affine(3, 54), "l1": lif((3,))}, (1, 6, 8)), \
        "f", "flattens dims"
    yield "affine on an image", chain({"c": conv(2, 1), "l0": lif((2, 6, 9)), "fc": affine(3, 108),
                                       "l1": lif((3,))}, (1, 6, 8)), "fc", "insert a Flatten"
    yield "two weighted nodes", chain({"fc": affine(3, 5), "fc2": affine(3, 3), "l0": lif((3,))}), "fc2", "cannot stand"
    yield "overlapping pool into a dense", chain({"c": conv(1, 1), "l0": lif((1, 6, 9)), "p": nir.SumPool2d(
        kernel_size=np.array([3, 3]), stride=np.array([1, 1]), padding=np.array([0, 0])), "f": nir.Flatten(
        input_type={"input": np.array([1, 4, 7])}, start_dim=0), "fc": affine(2, 28, weight=np.full((2, 28), 100)),
        "l1": lif((2,))}, (1, 6, 8)), "fc", "overlapping"

    def nonzero_reset(tmp):
        node = lif((3,))
        node.v_reset = np.full(3, 0.5)
        return chain({"fc": affine(3, 5), "l0": node})(tmp)

    yield "nonzero v_reset", nonzero_reset, "l0", "v_reset"

    def dangling(tmp):
        nodes = {"fc": affine(3, 5), "l0": lif((3,)), "extra": nir.Delay(delay=np.ones(3))}
        return graph(nodes, [("input", "fc"), ("fc", "l0"), ("l0", "output")], (5,), tmp)

    yield "a node off the chain", dangling, "extra", "not on the chain"


@pytest.mark.parametrize("case", list(bad_graphs()), ids=lambda c: c[0])
def test_unsupported_graphs_name_the_node(case, tmp_path):
    _, build, node, why = case
    with pytest.raises(SpikeportError) as err:
        load_nir(build(tmp_path))
    msg = str(err.value)
    assert f"node '{node}'" in msg and why.lower() in msg.lower(), msg
    assert "\n" not in msg


def test_weight_limits_are_loihis():
    assert (loihi.WEIGHT_MIN, loihi.WEIGHT_MAX) == (-127, 127)
