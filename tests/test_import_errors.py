"""`spikeport import` on bad or inexpressible graphs: one-line errors naming the file and the node (exit
code 2 from the CLI), approximations only with --allow-approx and then listed; nested subgraphs,
--producer auto, inputs validation."""
import json

import nir
import numpy as np
import pytest

from spikeport.errors import SpikeportError
from spikeport.importer.conventions import PRODUCERS
from spikeport.importer.run import import_graph
from spikeport.importer.simulate import simulate
from spikeport.nirfmt.flat import load_graph
from tests.conftest import cli

DT = 1e-3


def _lif(n, **kw):
    p = {"tau_syn": np.full(n, 2e-3), "tau_mem": np.full(n, 1e-2), "r": np.full(n, 10.0), "v_leak": np.zeros(n),
         "v_threshold": np.ones(n), "w_in": np.full(n, 2.0)}
    p.update(kw)
    return nir.CubaLIF(**p)


def _graph(n_in=6, n=5, **over):
    rng = np.random.default_rng(0)
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc": nir.Linear(weight=rng.normal(0, 1, (n, n_in))), "lif": _lif(n),
             "output": nir.Output(output_type={"output": np.array([n])})}
    nodes.update(over)
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)


def _write(g, path):
    nir.write(str(path), g)
    return path


def _one_line(err: SpikeportError, *words):
    msg = str(err)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_bad_files(tmp_path):
    good = _write(_graph(), tmp_path / "good.nir")
    cut = tmp_path / "cut.nir"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "text.nir"
    text.write_text("not a graph")
    for path, words in ((cut, ["cut.nir"]), (text, ["text.nir", "not HDF5"]), (tmp_path / "none.nir", ["not found"])):
        with pytest.raises(SpikeportError) as e:
            import_graph(path, dt=DT, out=tmp_path / "o", producer="spikeport", time_steps=5)
        _one_line(e.value, *words)


@pytest.mark.parametrize("case", ["dangling", "shape", "nan", "inf", "unknown"])
def test_bad_graphs_name_the_node(case, tmp_path):
    path = tmp_path / f"{case}.nir"
    if case == "dangling":
        g = _graph()
        g.edges.append(("lif", "ghost"))
        _write(g, path)
    elif case == "shape":
        _write(_graph(fc=nir.Linear(weight=np.ones((5, 7)))), path)
    elif case in ("nan", "inf"):
        _write(_graph(lif=_lif(5, v_threshold=np.array([1, 1, np.nan if case == "nan" else np.inf, 1, 1.0]))), path)
    else:
        _write(_graph(), path)
        import h5py

        with h5py.File(path, "r+") as f:
            del f["node/nodes/lif/type"]
            f["node/nodes/lif/type"] = np.bytes_("Spiky")
    node = {"dangling": "ghost", "shape": "fc", "nan": "lif", "inf": "lif", "unknown": "lif"}[case]
    why = {"dangling": "does not exist", "shape": "expects input shape", "nan": "NaN", "inf": "infinite",
           "unknown": "unknown node type"}[case]
    with pytest.raises(SpikeportError) as e:
        import_graph(path, dt=DT, out=tmp_path / "o", producer="spikeport", time_steps=5)
    _one_line(e.value, str(path), f"node '{node}'", why)


def test_cli_errors_exit_2(tmp_path):
    path = _write(_graph(fc=nir.Linear(weight=np.ones((5, 7)))), tmp_path / "bad.nir")
    proc = cli("import", str(path), "--dt", "1e-3", "--out", str(tmp_path / "o"), "--producer", "spikeport", "-T", "4")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "node 'fc'" in lines[0] and "bad.nir" in lines[0]
    proc = cli("import", str(path), "--dt", "1e-3", "--out", str(tmp_path / "o"))  # auto: no metadata
    assert proc.returncode == 2 and "--producer" in proc.stderr


def test_producer_auto_reads_metadata_or_refuses(tmp_path):
    g = _graph()
    path = _write(g, tmp_path / "plain.nir")
    with pytest.raises(SpikeportError, match="does not name its producer"):
        import_graph(path, dt=DT, out=tmp_path / "o", producer="auto", time_steps=4)
    g.metadata = {"producer": "snntorch 1.0.0"}
    info = import_graph(_write(g, tmp_path / "tagged.nir"), dt=1e-4, out=tmp_path / "o2", producer="auto", time_steps=4)
    assert info["producer"] == "snntorch" and info["time_steps"] == 4


def test_approximations_need_allow_approx_and_are_listed(tmp_path):
    n = 5
    delayed = _graph()
    delayed.nodes["delay"] = nir.Delay(delay=np.full(6, 2 * DT))
    delayed.edges = [("input", "delay"), ("delay", "fc"), ("fc", "lif"), ("lif", "output")]
    path = _write(delayed, tmp_path / "delay.nir")
    with pytest.raises(SpikeportError, match=r"node 'delay': delays its input.*--allow-approx"):
        import_graph(path, dt=DT, out=tmp_path / "o", producer="spikeport", time_steps=6)
    info = import_graph(path, dt=DT, out=tmp_path / "o", producer="spikeport", allow_approx=True, time_steps=6)
    assert info["approximations"][0]["node"] == "delay" and not info["exact"]
    plain = _write(_graph(), tmp_path / "plain.nir")
    with pytest.raises(SpikeportError, match=r"node 'lif': resets by subtracting"):
        import_graph(plain, dt=DT, out=tmp_path / "o3", producer="spikeport", reset="subtract", time_steps=6)
    info = import_graph(plain, dt=DT, out=tmp_path / "o4", producer="spikeport", time_steps=6)
    assert info["exact"] and json.loads((tmp_path / "o4" / "import.json").read_text())["conventions"]["reset"] == "zero"
    li = _graph(lif=nir.LI(tau=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n)))
    with pytest.raises(SpikeportError, match=r"node 'lif': LI is a membrane readout"):
        import_graph(_write(li, tmp_path / "li.nir"), dt=DT, out=tmp_path / "o5", producer="spikeport", time_steps=6)


def test_delay_is_simulated_exactly(tmp_path):
    g = _graph()
    g.nodes["delay"] = nir.Delay(delay=np.full(6, 3 * DT))
    g.edges = [("input", "delay"), ("delay", "fc"), ("fc", "lif"), ("lif", "output")]
    fg = load_graph(_write(g, tmp_path / "d.nir"))
    x = np.random.default_rng(1).random((12, 4, 6)) * 5
    res = simulate(fg, PRODUCERS["spikeport"], DT, x, record=["fc"])
    plain = simulate(load_graph(_write(_graph(), tmp_path / "p.nir")), PRODUCERS["spikeport"], DT, x, record=["fc"])
    np.testing.assert_array_equal(res.outputs["fc"][3:], plain.outputs["fc"][:-3])
    assert not res.outputs["fc"][:3].any()


def test_nested_subgraph_equals_flat_graph(tmp_path):
    """A recurrent CubaLIF as a NIRGraph inside the NIRGraph (the NIR paper's braille layout) runs
    exactly as the same network written flat."""
    rng = np.random.default_rng(2)
    w_in, w_rec, w_out = rng.normal(0, 1, (8, 6)), rng.normal(0, 0.5, (8, 8)), rng.normal(0, 1, (3, 8))
    inner = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([8])}), "lif": _lif(8),
                                "w_rec": nir.Linear(weight=w_rec), "output": nir.Output(output_type={"output": np.array([8])})},
                         edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")], type_check=False)
    top = {"input": nir.Input(input_type={"input": np.array([6])}), "fc": nir.Linear(weight=w_in), "rnn": inner,
           "out": nir.Linear(weight=w_out), "lif2": _lif(3), "output": nir.Output(output_type={"output": np.array([3])})}
    nested = nir.NIRGraph(nodes=top, edges=[("input", "fc"), ("fc", "rnn"), ("rnn", "out"), ("out", "lif2"),
                                            ("lif2", "output")], type_check=False)
    flat_nodes = {k: v for k, v in top.items() if k != "rnn"} | {"lif": _lif(8), "w_rec": nir.Linear(weight=w_rec)}
    flat = nir.NIRGraph(nodes=flat_nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
                                                 ("lif", "out"), ("out", "lif2"), ("lif2", "output")], type_check=False)
    fg_n, fg_f = load_graph(_write(nested, tmp_path / "n.nir")), load_graph(_write(flat, tmp_path / "f.nir"))
    assert fg_n.recurrent == {("rnn.w_rec", "rnn.lif")} and fg_n.kinds["rnn.input"] == "Identity"
    x = (np.random.default_rng(3).random((20, 16, 6)) < 0.5).astype(float)
    a = simulate(fg_n, PRODUCERS["spikeport"], DT, x, record=["rnn.lif", "lif2"])
    b = simulate(fg_f, PRODUCERS["spikeport"], DT, x, record=["lif", "lif2"])
    np.testing.assert_array_equal(a.outputs["rnn.lif"], b.outputs["lif"])
    np.testing.assert_array_equal(a.outputs["lif2"], b.outputs["lif2"])
    assert a.outputs["rnn.lif"].any()
    np.save(tmp_path / "x.npy", np.swapaxes(x, 0, 1))
    info = import_graph(tmp_path / "n.nir", dt=DT, out=tmp_path / "run", producer="spikeport", inputs=tmp_path / "x.npy")
    assert info["exact"] and info["layers"][0]["source_nodes"] == ["fc", "rnn.input", "rnn.lif", "rnn.w_rec"]


@pytest.mark.parametrize("bad", ["negative", "shape", "object", "labels"])
def test_inputs_are_validated(bad, tmp_path):
    path = _write(_graph(), tmp_path / "g.nir")
    x = np.ones((4, 5, 6))
    labels = None
    if bad == "negative":
        x[0, 0, 0] = -1
    elif bad == "shape":
        x = np.ones((4, 5, 7))
    elif bad == "object":
        x = np.array([{"a": 1}], dtype=object)
    else:
        labels = tmp_path / "y.npy"
        np.save(labels, np.zeros(3, np.int64))
    np.save(tmp_path / "x.npy", x, allow_pickle=True)
    with pytest.raises(SpikeportError) as e:
        import_graph(path, dt=DT, out=tmp_path / "o", producer="spikeport", inputs=tmp_path / "x.npy", labels=labels)
    _one_line(e.value, "npy")


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_cli_import_then_deploy_parity_energy_report(tmp_path):
    """The imported run folder works with every stage (emulator backend here; Lava in test_import)."""
    from spikeport import pipeline as workflow

    path = _write(_graph(n_in=6, n=5), tmp_path / "g.nir")
    x = (np.random.default_rng(4).random((30, 8, 6)) < 0.6).astype(np.float32) * 3  # graded: 0 or 3
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(30) % 5)
    run = tmp_path / "run"
    proc = cli("import", str(path), "--dt", "1e-3", "--out", str(run), "--producer", "spikeport",
               "--inputs", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((run / "import.json").read_text())
    assert info["input"] == {"unit": 1.0, "graded": True, "max_error": 0.0} and info["exact"]
    proc = cli("parity", str(run), "--backend", "emulator")
    assert proc.returncode == 0, proc.stderr
    par = json.loads((run / "parity.json").read_text())
    assert par["imported"] and par["prediction_agreement"] >= 0.99 and par["labels"] == "given"
    dep = workflow.deploy(run / "model.nir", data="digits", backend="emulator", out=tmp_path / "dep")
    assert dep["samples"] == 15 and dep["accuracy"] is not None  # the 15 samples the import scored (15 calibrated)
    assert workflow.energy(run, samples=10, profiles=["loihi"])["samples"] == 10
    from spikeport.report import markdown

    assert "imported from spikeport" in markdown.write(run).read_text()
