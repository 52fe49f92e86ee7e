"""TrainConfig.target "netx": the quantizer's integers are the ones lava-dl's netx can write (weight_exp 0,
bias on the bias_exp 6 grid, recurrent exponent 0), checked on hand-computed layers; checkpoints saved
before the field keep spikeport's own integers ("lava")."""
import json
import warnings

import numpy as np
import pytest

from spikeport.core import loihi, quant
from spikeport.errors import SpikeportError
from spikeport.train import checkpoint
from spikeport.train.config import TrainConfig

W = np.array([[0.01, -0.005, 0.0025]])  # max |w| = 0.01: at theta 1, vth = 127 / 0.01 = 12700 before any shift


def _layer(netx: bool, bias=None, **kw):
    return quant.quantize_layer(W, beta_syn=0.5, beta_mem=0.9, theta=1.0, input_unit=1.0, bias=bias, netx=netx,
                                **kw)


def test_lava_shifts_the_sum_where_netx_coarsens_the_weight_step():
    lava = _layer(False)
    assert lava.weight_exp == -4 and lava.lif.vth == round(12700 / 16)  # 12700 / 2**k <= 1024
    netx = _layer(True)
    # netx: vth up to 8192 needs k = 1, as a weight step twice max|w| / 127; the sum is q @ x, unshifted
    assert netx.weight_exp == 0 and netx.weight_scale == pytest.approx(0.02 / 127)
    assert netx.weight.tolist() == [[64, -32, 16]]  # 63.5, -31.75, 15.875 rounded
    assert netx.lif.vth == 6350 and netx.state_scale == pytest.approx(0.02 / 127)


def test_netx_bias_sits_on_the_bias_exp_6_grid_and_fits_13_bits():
    lq = _layer(True, bias=np.array([0.3]))
    assert lq.lif.bias_exp == 6 and lq.lif.bias_mant.tolist() == [round(0.3 * 6350)]
    assert lq.lif.effective_bias().tolist() == [round(0.3 * 6350) * 64]
    big = _layer(True, bias=np.array([2.0, -0.5]))  # 2 thresholds a step: 12700 > 4095 at vth 6350
    s = 4 * 0.02 / 127  # the state scale doubled twice
    assert big.state_scale == pytest.approx(s) and big.lif.vth == round(1.0 / s)
    assert big.lif.bias_mant.tolist() == [round(2.0 / s), round(-0.5 / s)]
    assert np.abs(big.lif.bias_mant).max() <= loihi.BIAS_MANT_MAX
    assert big.weight.tolist() == [[16, -8, 4]]  # the weights follow the state's step


def test_netx_graded_layer_keeps_the_current_bound():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (16, 64))
    lq = quant.quantize_layer(w, beta_syn=0.5, beta_mem=0.9, theta=1.0, input_unit=1 / 255, max_input=255, netx=True)
    assert lq.weight_exp == 0 and lq.lif.vth <= quant.NETX_VTH_TARGET_MAX
    assert quant.peak_current(lq.weight, 255, lq.lif.du, 0) < loihi.STATE_MAX  # u cannot wrap


def test_netx_feedback_has_exponent_0_and_clips_to_int8():
    q, exp, scale = quant.quantize_feedback(np.array([[0.5, -0.001], [0.0003, 2.0]]), 0.01, netx=True)
    assert exp == 0 and scale == 0.01 and q.tolist() == [[50, 0], [0, 127]]
    assert quant.quantize_feedback(np.array([[0.5, -0.001]]), 0.01)[1] == -1  # spikeport's own: shifted


def test_target_field_default_and_bad_value():
    assert TrainConfig().target == "netx"
    with pytest.raises(SpikeportError, match="'target'") as err:
        TrainConfig.from_dict({"target": "loihi3"}, source="x.json")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("saved,expect", [(None, "lava"), ("netx", "netx"), ("lava", "lava")])
def test_checkpoint_without_target_keeps_spikeports_integers(tmp_path, saved, expect):
    cfg = TrainConfig(data="digits", hidden=[8], time_steps=4, target=saved or "lava")
    model = checkpoint.build_model(cfg, 64, 10, (64,))
    checkpoint.save(tmp_path, model, cfg, 64, 10, (64,))
    if saved is None:  # a config.json written before the field existed
        doc = json.loads((tmp_path / "config.json").read_text())
        del doc["config"]["target"]
        (tmp_path / "config.json").write_text(json.dumps(doc))
    loaded, cfg2, _ = checkpoint.load(tmp_path)
    assert cfg2.target == expect and all(layer.netx == (expect == "netx") for layer in loaded.layers)
    assert (loaded.quant()[0].weight_exp < 0) == (expect == "lava")  # graded first layer: shifted only by "lava"


def _fmnist_model(target: str, encoder: str = "direct"):
    cfg = TrainConfig(data="fashion-mnist", arch="fc", hidden=[64], encoder=encoder, method="bpsrm", target=target)
    return checkpoint.build_model(cfg, 784, 10, (1, 28, 28)), cfg


def test_training_warns_where_netx_rounds_a_graded_layer_to_zero():
    """Direct-encoded pixels (up to 255) into 784 inputs: netx's unshifted weights must stay within the
    threshold's current bound, and every initial weight of the first layer rounds to 0 (what made bpsrm fc
    with a membrane readout diverge); target lava shifts the sum instead, and spikes (max input 1) are fine."""
    from spikeport.train.loop import warn_vanishing_netx_weights

    model, cfg = _fmnist_model("netx")
    with pytest.warns(RuntimeWarning, match="target = 'lava'"):
        fractions = warn_vanishing_netx_weights(model, cfg)
    w, b = model.layers[0].float_params(None)
    assert np.count_nonzero(model.layers[0].quantize(w.detach(), b).weight) == 0
    assert fractions == [0.0]
    for target, encoder in (("lava", "direct"), ("netx", "rate")):
        model, cfg = _fmnist_model(target, encoder)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warn_vanishing_netx_weights(model, cfg)
        w, b = model.layers[0].float_params(None)
        q = model.layers[0].quantize(w.detach(), b).weight
        assert np.count_nonzero(q) > 0.9 * q.size
