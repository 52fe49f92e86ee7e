"""Every ``examples/*.toml`` configuration, trained tiny on digits (its architecture, method, encoder and
neuron kept), goes out through ``write_netx`` exactly or is refused with its reason; every file written
runs on netx on Lava with the same spikes as spikeport's emulator."""
from __future__ import annotations

from pathlib import Path

import pytest

from spikeport.errors import SpikeportError
from spikeport.export.netx_export import write_netx
from tests import netx_nets

ALL_EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))


def _elsewhere(toml: Path) -> str | None:
    """Where an example that this file's check does not fit is tested, or None (it is checked here)."""
    from spikeport.train.config import TrainConfig

    cfg = TrainConfig.from_toml(toml)
    if cfg.neuron == "sigma-delta":
        return "tests/test_sigma_delta_train.py (export --netx, netx on Lava == emulator)"
    if cfg.target == "xylo-audio2":
        return "tests/test_xylo_pipeline.py (not a netx network)"
    if cfg.readout == "membrane":
        return "tests/test_membrane_readout.py (its output integrator never spikes: values are compared)"
    if cfg.encoder == "events":
        return "tests/test_xylo_pipeline.py (temporal data, not retrainable on digits images)"
    return None


EXAMPLES = [p for p in ALL_EXAMPLES if _elsewhere(p) is None]
# what netx cannot express, per method: KLIF's floor on v (klif_floor "all" or "hidden": a hidden layer has it)
REFUSED = {"klif": "KLIF's v floor"}


def _tiny_run(tmp_path: Path, toml: Path):
    """The example's config on digits (8x8 images), 1000 training samples, 4 epochs; exported to NIR."""
    from spikeport.export.nir_export import export_run
    from spikeport.nirfmt.load import load_nir
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    cfg = TrainConfig.from_toml(toml)
    # the default, netx, on digits (64 inputs): bpsrm / hnsg examples train for "lava" on Fashion-MNIST only because
    # netx rounds their 784-pixel first layer to zeros; their method and architecture must still export exactly
    cfg.target = "netx"
    cfg.data, cfg.data_dir, cfg.limit, cfg.epochs, cfg.validation = "digits", None, 1000, 4, 0
    cfg.validate(str(toml))
    out = tmp_path / toml.stem
    train(cfg, out)
    path = export_run(out)
    return cfg, load_nir(path)


def _check(tmp_path: Path, toml: Path, samples: int) -> None:
    cfg, net = _tiny_run(tmp_path, toml)
    if cfg.method in REFUSED:
        with pytest.raises(SpikeportError, match=REFUSED[cfg.method]) as err:
            write_netx(net, tmp_path / "model.net")
        assert "\n" not in str(err.value)
        return
    path = write_netx(net, tmp_path / "model.net")
    x = netx_nets.digits_input(net, samples, cfg.encoder, offset=1000)
    assert netx_nets.compare(net, x, path) == [0] * len(net.populations)


def test_examples_are_all_covered():
    """Every example is checked here or names the test that covers it."""
    names = {p.stem for p in EXAMPLES}
    assert len(names) >= 11 and {"lif_fmnist", "bpsrm_fmnist", "hnsg_fmnist", "lif_conv_fmnist"} <= names
    others = {p.stem: _elsewhere(p) for p in ALL_EXAMPLES if p.stem not in names}
    assert {"sdnn_conv_fmnist", "xylo_digits_rows", "bpsrm_membrane_fmnist"} <= set(others)
    for reason in others.values():
        assert (Path(__file__).resolve().parent / Path(reason.split("::")[0].split(" ")[0]).name).is_file()


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_bpsrm_example_equals_netx_on_lava(tmp_path):
    """bpsrm folds its normalization into biases: netx's bias_exp 6 grid, trained for (16 samples)."""
    _check(tmp_path, next(p for p in EXAMPLES if p.stem == "bpsrm_fmnist"), 16)


@pytest.mark.slow
@pytest.mark.parametrize("toml", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_exports_exactly_or_is_refused(tmp_path, toml):
    _check(tmp_path, toml, 60)
