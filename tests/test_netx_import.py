"""netx files written by lava-dl slayer (and by spikeport) become spikeport networks whose emulator
equals netx itself on Lava, spike for spike; what spikeport cannot express is refused by block."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from spikeport.deploy import emulator
from spikeport.deploy.supervise import run_netx
from spikeport.errors import SpikeportError
from spikeport.export.netx_export import write_netx
from spikeport.importer.netx_import import import_netx
from spikeport.nirfmt.load import load_nir
from spikeport.nirfmt.runnet import load_run
from tests import netx_nets

NEURON = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.1, "tau_grad": 0.1, "scale_grad": 1.0,
          "requires_grad": False}
T = 10


def _slayer_file(path, kind: str, steps: int = 3):
    """Train a tiny slayer CUBA network for a few Adam steps on random spikes (CPU) and export it with
    slayer's own ``export_hdf5``; returns the input shape of one sample."""
    import torch
    from lava.lib.dl import slayer

    torch.manual_seed(0)
    cuba = slayer.block.cuba  # each block gets its own parameter dict: slayer's Recurrent edits the one it gets
    if kind == "dense":
        blocks = [cuba.Dense(dict(NEURON), 40, 24, weight_scale=2, weight_norm=False),
                  cuba.Recurrent(dict(NEURON), 24, 16, weight_scale=2, weight_norm=False),
                  cuba.Affine(dict(NEURON), 16, 10, weight_scale=2, weight_norm=False)]  # read by its voltage
        shape = (40,)
    else:
        blocks = [cuba.Conv(dict(NEURON), 1, 4, 3, padding=1, weight_scale=2, weight_norm=False),
                  cuba.Conv(dict(NEURON), 4, 6, (3, 2), stride=2, weight_scale=2, weight_norm=False),
                  cuba.Flatten(), cuba.Dense(dict(NEURON), 6 * 3 * 5, 10, weight_scale=2, weight_norm=False)]
        shape = (1, 8, 10)
    net = torch.nn.Sequential(*blocks)
    x = (torch.rand(8, *shape, T) < 0.3).float()  # slayer: N C [H W] T
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        loss = ((net(x).mean(-1) - 0.2) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with h5py.File(path, "w") as fh:
        layer = fh.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))
    return shape


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_slayer_file_imports_and_equals_netx_on_lava(tmp_path, kind):
    src = tmp_path / "slayer.net"
    shape = _slayer_file(src, kind)
    info = import_netx(src, tmp_path / "run", time_steps=T, input_shape=shape)
    assert (tmp_path / "run" / "source.net").is_file() and info["exact"]
    net = load_run(tmp_path / "run")
    x = (np.random.default_rng(1).random((T, 16, *shape)) < 0.3).astype(np.int64)
    emu = emulator.run(net, x)
    ref = emu.spikes
    got, values = run_netx(src, x, timeout_s=300, with_values=True)  # slayer's file itself, loaded by netx
    assert [r.shape for r in ref] == [g.shape for g in got]
    assert all(0.005 < r.mean() < 0.98 for r in (ref[:-1] if net.regression else ref))
    assert [int((r != g).sum()) for r, g in zip(ref, got)] == [0] * len(ref)
    if kind == "dense":  # slayer's Recurrent block -> dense_rec; its Affine block: a voltage read every step
        assert net.populations[1].recurrent is not None and net.regression and not net.isolated_samples
        assert np.array_equal(emu.values, values) and np.count_nonzero(values) > values.size // 2


@pytest.mark.parametrize("build", [netx_nets.spatial_net, netx_nets.flat_net])
def test_spikeport_file_round_trips(tmp_path, build):
    """write_netx -> import_netx gives a network that computes the same spikes (pool-only populations
    come back as all-ones grouped convs, biases with bias_exp 6)."""
    rng = np.random.default_rng(0)
    net = build(rng)
    import_netx(write_netx(net, tmp_path / "model.net"), tmp_path / "run", time_steps=net.time_steps)
    back = load_nir(tmp_path / "run" / "model.nir")
    if net.graded_input:
        x = rng.integers(0, 256, (1, 10, *net.input_shape)).repeat(net.time_steps, 0)
    else:
        x = (rng.random((net.time_steps, 10, *net.input_shape)) < 0.3).astype(np.int64)
    assert back.graded_input == net.graded_input
    for a, b in zip(emulator.run(net, x).spikes, emulator.run(back, x).spikes):
        assert np.array_equal(a, b)


def _edit(path, block: int, change) -> None:
    with h5py.File(path, "a") as fh:
        change(fh["layer"][str(block)])


def _set(key, value):
    def change(group):
        if key in group:
            del group[key]
        group.create_dataset(key, data=value)
    return change


@pytest.mark.parametrize("change,match", [
    (_set("type", np.array([b"pool"], "S10")), "block 1 \\('pool'\\).*NotImplementedError"),
    (_set("neuron/type", np.array([b"RF_PHASE"], "S10")), "neuron type 'RF_PHASE'"),
    (_set("delay", -np.ones(16)), "non-negative"),
    (_set("neuron/iDecay", 5000), "du=4999"),
    (_set("neuron/vThMant", 1 << 26), "vth"),
    (_set("weight", np.full((16, 20), 300.0)), "weights up to 300 need a negative netx shift"),
    (lambda g: (g.__delitem__("weight"), g.create_dataset("weight/real", data=np.ones((16, 20))),
                g.create_dataset("weight/imag", data=np.ones((16, 20)))), "complex"),
])
def test_what_spikeport_cannot_express_is_refused_by_block(tmp_path, change, match):
    path = write_netx(netx_nets.flat_net(np.random.default_rng(0)), tmp_path / "model.net")
    _edit(path, 1, change)
    with pytest.raises(SpikeportError, match=match) as err:
        import_netx(path, tmp_path / "run", time_steps=5)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "run" / "model.nir").exists()


def test_not_a_netx_file_is_refused(tmp_path):
    bad = tmp_path / "model.net"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(SpikeportError, match="not an HDF5 file"):
        import_netx(bad, tmp_path / "run", time_steps=5)
    with h5py.File(tmp_path / "empty.net", "w") as fh:
        fh.create_group("other")
    with pytest.raises(SpikeportError, match="no 'layer' group"):
        import_netx(tmp_path / "empty.net", tmp_path / "run", time_steps=5)
