"""A leak-free population written by spikeport loads in spikeport (issue 16 item 1): an IF graph (Sinabs's
kind of neuron) imported at dt = 1 s or 1e-4 s used to be refused by parity on the run's own model.nir
(tau_mem = dt*2**40 and r = 2**40 beyond the guard's 1e12). The written CubaLIF must pass the guard and
nir's own type check, and still mean exactly "no leak, unit gain, the same bias"."""
import nir
import numpy as np
import pytest

from spikeport import pipeline as workflow
from spikeport.errors import SpikeportError
from spikeport.importer.run import import_graph
from spikeport.nirfmt import guard, nodes, spec
from spikeport.nirfmt.load import load_nir


def _if_graph(path, bias: float):
    """Input 16 -> Affine (with a bias) -> IF -> Affine -> IF -> Output, written by nir itself."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(0, 0.6, (12, 16)), rng.normal(0, 0.8, (4, 12))
    g = nir.NIRGraph.from_list(nir.Input(np.array([16])), nir.Affine(w1, np.full(12, bias)),
                               nir.IF(r=np.ones(12), v_threshold=np.ones(12)), nir.Affine(w2, np.zeros(4)),
                               nir.IF(r=np.ones(4), v_threshold=np.ones(4)), nir.Output(np.array([4])))
    nir.write(str(path), g)
    x = (rng.random((24, 10, 16)) < 0.4).astype(np.float32)
    np.save(path.with_suffix(".npy"), x)
    return path.with_suffix(".npy")


@pytest.mark.parametrize("dt", [1.0, 1e-4])
def test_imported_leak_free_layers_load_and_run_parity(tmp_path, dt):
    x = _if_graph(tmp_path / "if.nir", bias=0.25)
    run = tmp_path / "run"
    import_graph(tmp_path / "if.nir", dt=dt, out=run, producer="sinabs", allow_approx=True, inputs=x)
    g = guard.read(run / "model.nir")  # used to raise: tau_mem (dt = 1) or r (dt = 1e-4) beyond 1e12
    nir.read(str(run / "model.nir"))  # nir's own type check
    for name in ("lif0", "lif1"):
        node = g.nodes[name]
        assert np.isfinite(node.tau_mem).all() and np.abs(node.tau_mem).max() <= spec.MAX_ABS
        np.testing.assert_array_equal(node.r * (dt / node.tau_mem), 1.0)  # unit input gain, exactly
        assert (1.0 - dt / node.tau_mem).astype(np.float32).min() == 1.0  # no leak in float32 readers
    lq_bias = g.nodes["lif0"].v_leak * (dt / g.nodes["lif0"].tau_mem)  # the per-step bias, exactly
    assert np.all(lq_bias > 0)
    load_nir(run / "model.nir")
    res = workflow.parity(run, backend="emulator", min_agreement=0.0)  # parity accepts the run's own graph
    assert res["passed"] and res["samples"] == x_samples(run) and res["spike_mismatches"] is None  # emulator only


def x_samples(run) -> int:
    return int(np.load(run / "inputs.npy", allow_pickle=False).shape[0])


def test_no_leak_steps_stay_within_the_guard():
    for dt, bias in [(1.0, 0.0), (1e-4, 3.0), (10.0, -2e3), (1.0, 5e4)]:
        k = nodes.no_leak_steps(dt, np.array([bias, 0.5]))
        assert k == 2.0 ** round(np.log2(k)) and 2.0**spec.NO_LEAK_MIN_EXP <= k <= 2.0**spec.NO_LEAK_MAX_EXP
        assert max(k, k * dt, k * abs(bias)) <= spec.MAX_ABS
    assert nodes.no_leak_steps(1e-4, np.zeros(3)) == 2.0**spec.NO_LEAK_MAX_EXP
    with pytest.raises(SpikeportError, match="without leak"):
        nodes.no_leak_steps(1.0, np.array([1e6]))
