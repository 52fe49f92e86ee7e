"""netx HDF5 export, checked by netx itself: every file is loaded by ``lava.lib.dl.netx.hdf5.Network``,
run on Lava fixed_pt, and every spike of every block compared with spikeport's integer emulator."""
from __future__ import annotations

import numpy as np
import pytest

from spikeport.core import loihi
from spikeport.core.linear import Pool2d
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.deploy.supervise import run_netx
from spikeport.errors import SpikeportError
from spikeport.export.netx_export import write_netx
from spikeport.nirfmt import netx as rules
from tests import lava_faults, netx_nets


def _lava_dense(w: np.ndarray) -> tuple[np.ndarray, int]:
    """What lava-dl's netx and Lava's Dense model do to integer weights, by their own functions."""
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    lw, n_bits, exp, _ = optimize_weight_bits(w)
    mode = determine_sign_mode(lw)
    lw = truncate_weights(clip_weights(lw, mode, num_bits=8), mode, n_bits)
    return np.asarray(lw, np.int64), exp


def test_weight_rules_match_netx_and_lava():
    rng = np.random.default_rng(3)
    cases = [rng.integers(lo, hi, (6, 7)) for lo, hi in
             [(-127, 128), (-20, 21), (0, 256), (0, 9), (-256, 0), (-254, 255), (-90, 1), (-300, 300)]]
    cases += [rng.integers(-63, 64, (5, 5)) * 2, rng.integers(-31, 32, (4, 4)) * 8, np.array([[-64, -3]]),
              np.array([[-128, -1]]), np.array([[0, -200]]), np.array([[127, -127]]), np.array([[1, 0]]),
              np.array([[255, 3]]), np.array([[-129, 100]])]
    for w in cases:
        mine, exp = rules.dense_synapse(w)
        theirs, their_exp = _lava_dense(w)
        assert exp == their_exp and np.array_equal(mine, theirs), w
    assert not rules.dense_exact(np.array([[-64, -3]]))  # inhibitory power of two: Lava clips -256 to -255
    assert rules.dense_exact(rng.integers(-127, 128, (8, 8)))
    with pytest.raises(rules.NotExact):
        rules.dense_synapse(np.zeros((2, 2), np.int64))


_compare = netx_nets.compare


def _random_input(net, rng, batch: int) -> np.ndarray:
    if net.graded_input:
        return rng.integers(0, 256, (1, batch, *net.input_shape)).repeat(net.time_steps, 0)
    return (rng.random((net.time_steps, batch, *net.input_shape)) < 0.3).astype(np.int64)


@pytest.mark.parametrize("build", [netx_nets.spatial_net, netx_nets.flat_net])
def test_hand_built_nets_equal_netx_on_lava(tmp_path, build):
    """conv (non-square kernel and image), pool-only, folded pool, flatten, dense_rec, biases, graded input,
    pruned layer, positive weight exponent, excitatory-only weights."""
    rng = np.random.default_rng(0)
    net = build(rng)
    path = write_netx(net, tmp_path / "model.net")
    import h5py

    with h5py.File(path, "r") as fh:  # the pruned net runs with netx's Lava Sparse synapses
        assert bool(fh.attrs["sparse_fc_layer"]) == (build is netx_nets.flat_net)
    assert _compare(net, _random_input(net, rng, 12), path) == [0] * len(net.populations)


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_demo_like_run_exports_and_equals_netx_on_lava(tmp_path):
    """``spikeport export RUN --netx`` on the demo's network (digits, direct encoding, CUBA-LIF MLP, the
    default target "netx"): written as trained, netx on Lava equals the emulator spike for spike."""
    from tests.conftest import cli

    nir_path, net = netx_nets.trained(tmp_path, "demo")
    assert net.graded_input and all(p.input.weight_exp == 0 for p in net.populations)
    proc = cli("export", str(nir_path.parent), "--netx")
    assert proc.returncode == 0, proc.stderr
    acc = netx_nets.metrics(nir_path.parent)["quantized_accuracy"]
    assert f"accuracy {100 * acc:.2f}% on 360 test samples" in " ".join(proc.stdout.split())  # what model.net holds
    path = nir_path.with_name("model.net")
    x = netx_nets.digits_input(net, 24, "direct")
    assert _compare(net, x, path) == [0, 0]


@pytest.mark.slow
@pytest.mark.parametrize("name,overrides", [
    ("demo", dict()),  # the demo's network: direct encoding, default target "netx"
    ("mlp_rate", dict(encoder="rate")),
    ("rfc_direct", dict(arch="rfc", hidden=[32], time_steps=8)),
    ("conv_direct", dict(arch="conv", channels=[4, 8], kernel=3, pool=2, hidden=[32], time_steps=6)),
])
def test_trained_nets_equal_netx_on_lava_200(tmp_path, name, overrides):
    """Trained runs written by ``write_netx`` as they are, 200 digits samples each."""
    _, net = netx_nets.trained(tmp_path, name, **overrides)
    path = write_netx(net, tmp_path / "model.net")
    x = netx_nets.digits_input(net, 200, overrides.get("encoder", "direct"), offset=100)
    assert _compare(net, x, path) == [0] * len(net.populations)


def test_lava_target_run_is_refused_with_its_right_shift(tmp_path):
    """target "lava" shifts the graded first layer's sum right (weight_exp < 0): netx cannot, so the export
    is refused in one line that names the population and the way out."""
    from tests.conftest import cli

    nir_path, net = netx_nets.trained(tmp_path, "lava", target="lava", epochs=1)
    assert net.populations[0].input.weight_exp < 0
    with pytest.raises(SpikeportError, match=r"population 'lif0' .*weight_exp -\d+.*target = \"netx\""):
        write_netx(net, tmp_path / "model.net")
    proc = cli("export", str(nir_path.parent), "--netx")
    assert proc.returncode == 2 and "weight_exp" in proc.stderr and "Traceback" not in proc.stderr
    assert not nir_path.with_name("model.net").exists()


def _one_layer(lif=None, conn=None):
    conn = conn or Connection("c", np.arange(-8, 8).reshape(4, 4), 0)
    lif = lif or loihi.LIFParams(du=10, dv=10, vth=10)
    return LoihiNet((conn.shape[1],) if conn.kind == "dense" else conn.in_shape,
                              [Population("p", conn.shape[0], lif, conn, shape=() if conn.kind == "dense" else
                                          conn.out_shape)], 4, graded_input=False)


@pytest.mark.parametrize("net,match", [
    (_one_layer(lif=loihi.LIFParams(du=1, dv=1, vth=5, floor_v=True)), "KLIF"),
    (_one_layer(lif=loihi.LIFParams(du=1, dv=1, vth=5, bias_mant=np.array([1, 0, 0, 64]))), "multiple of 64"),
    (_one_layer(conn=Connection("c", np.arange(-8, 8).reshape(4, 4), -1)), "weight_exp -1"),
    (_one_layer(conn=Connection("c", np.array([[201, -3], [5, 7]]), 0)), "clipped or truncated"),
    (_one_layer(conn=Connection("c", np.ones((2, 1, 2, 2), np.int64), 0, kind="conv", in_shape=(1, 5, 5),
                                pool=Pool2d((2, 2), (2, 2)))), "does not tile"),
])
def test_what_netx_cannot_express_is_refused(tmp_path, net, match):
    with pytest.raises(SpikeportError, match=match) as err:
        write_netx(net, tmp_path / "model.net")
    assert "\n" not in str(err.value) and "population 'p'" in str(err.value)


def test_bias_and_positive_exponent_are_exact_in_the_file(tmp_path):
    """The file holds bias / 64 and weights << weight_exp, as netx reads them (h5py, independent of spikeport)."""
    import h5py

    conn = Connection("c", np.arange(-8, 8).reshape(4, 4), 1)
    net = _one_layer(lif=loihi.LIFParams(du=1, dv=1, vth=5, bias_mant=np.array([1, 0, -2, 3]), bias_exp=7),
                     conn=conn)
    path = write_netx(net, tmp_path / "model.net")
    with h5py.File(path, "r") as fh:
        block = fh["layer/1"]
        assert block["type"][0] == b"dense"
        assert np.array_equal(block["weight"][()], np.arange(-8, 8).reshape(4, 4) * 2)
        assert np.array_equal(block["bias"][()], [2, 0, -4, 6])
        assert block["neuron/iDecay"][()] == 2 and block["neuron/vThMant"][()] == 5


def test_netx_runs_are_supervised(tmp_path, monkeypatch):
    """A failure inside the child (injected, or netx refusing a block) is one SpikeportError line."""
    import h5py

    net = netx_nets.flat_net(np.random.default_rng(0))
    path = write_netx(net, tmp_path / "model.net")
    x = np.zeros((net.time_steps, 2, 20), np.int64)
    with monkeypatch.context() as patch:
        lava_faults.install(patch, "raise")
        with pytest.raises(SpikeportError, match="injected failure"):
            run_netx(path, x, timeout_s=60)
    with h5py.File(path, "a") as fh:
        del fh["layer/2/type"]
        fh["layer/2"].create_dataset("type", (1,), "S10", [b"pool"])
    with pytest.raises(SpikeportError, match="Lava run failed: .*'pool'.*NotImplementedError"):
        run_netx(path, x, timeout_s=120)
