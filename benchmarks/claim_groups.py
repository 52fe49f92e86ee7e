"""The groups of benchmarks/claims.py: each function regenerates a set of figures in one run (one training
feeds several figures) and returns ``{key: value}`` in the unit the doc prints. claims.py's ``GROUPS`` names
them with their cost; its docstring says how to add one."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the tests package (a few figures come from its fixtures' networks)


def _module(name: str):
    """A script of benchmarks/ as a module."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def energy_figures() -> dict[str, float]:
    """benchmarks/energy_validation.py's comparisons (counting only, ~2 s): estimate / measured ratios."""
    ev = _module("energy_validation")
    b = ev.blouw_rows()
    out = {"blouw.per_op": b[0]["ratio"], "blouw.host": b[1]["ratio"], "blouw.remainder": b[2]["ratio"],
           "blouw.keras": b[3]["ratio"], "blouw.cpu": b[4]["ratio"], "blouw.gpu": b[5]["ratio"],
           "blouw.arm": b[6]["ratio"]}
    rows = iter(ev.nxsdk_rows())
    for key, m in ev.NXSDK.items():
        out[f"{key}.per_op"], out[f"{key}.host"], out[f"{key}.keras"] = (next(rows)["ratio"] for _ in range(3))
        if "core_dynamic_mw" in m:
            out[f"{key}.cores"] = next(rows)["ratio"]
    system = ev.system_rows()
    out["blouw.system"] = system[0]["ratio"]
    for r, key in zip(system[1:], [k for k, m in ev.NXSDK.items() if "static_mw" in m]):
        out[f"{key}.system"] = r["ratio"]
    return out


def demo_figures() -> dict[str, float]:
    """The demo's run (`spikeport demo`: digits, 20 epochs), exported with --netx and run through netx on Lava
    over the 360 test samples against the emulator, and its energy (loihi): ~4 min on 2 cores."""
    import tempfile

    from spikeport import pipeline
    from spikeport.export.netx_export import write_netx
    from spikeport.export.nir_export import export_run
    from spikeport.nirfmt.load import load_nir
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    with tempfile.TemporaryDirectory(prefix="spikeport-claims-demo-") as tmp:
        run = Path(tmp) / "demo"
        metrics = train(TrainConfig(data="digits", epochs=20), run)  # what `spikeport demo` trains
        path = export_run(run)
        write_netx(load_nir(path), run / "model.net")
        parity = pipeline.parity(run, backend="netx,emulator", samples=360)
        energy = pipeline.energy(run, samples=360, profiles=["loihi"])
    netx = next(c for c in parity["comparisons"] if c["pair"] == "reference-netx")
    out = {"float_acc": 100 * metrics["float_accuracy"], "qat_acc": 100 * metrics["qat_accuracy"],
           "int_acc": 100 * metrics["quantized_accuracy"], "netx_mismatches": netx["spike_mismatches"],
           "netx_spikes": sum(r["spikes_b"] for r in netx["per_layer"]),
           "loihi_per_op_uj": energy["energy_j"]["loihi"] * 1e6,
           "loihi_system_uj": energy["energy_j_with_overhead"]["loihi"] * 1e6}
    return out


def netx_reset_figures() -> dict[str, float]:
    """Spike mismatches of netx on Lava against the emulator on a recurrent net (tests/netx_nets.flat_net, seed
    3: integer weights, nothing trained), 20 samples, with and without the recurrent-buffer reset: ~30 s."""
    import tempfile

    import numpy as np

    from spikeport.deploy import emulator
    from spikeport.deploy.netx_backend import run_file
    from spikeport.export.netx_export import write_netx
    from tests import netx_nets

    rng = np.random.default_rng(3)
    net = netx_nets.flat_net(rng)
    x = (rng.random((net.time_steps, 20, *net.input_shape)) < 0.3).astype(np.int64)
    expected = emulator.run(net, x).spikes
    out = {}
    with tempfile.TemporaryDirectory(prefix="spikeport-claims-netx-") as tmp:
        path = write_netx(net, Path(tmp) / "model.net")
        for reset in (True, False):
            got = run_file(path, x, reset_recurrent=reset)
            out["with_reset" if reset else "without_reset"] = sum(int((g != e).sum()) for g, e in zip(got, expected))
    return out


def peers_export_figures() -> dict[str, float]:
    """docs/nir_peers.md's export table: the test fixture's network (tests/conftest.py tiny_run: digits 64-64-10,
    T = 12, 12 epochs) written by `spikeport export`, run by snnTorch's ``import_from_nir`` and Norse's
    ``from_nir`` (dt 1e-4 and its default 1e-3) against spikeport's float model of the file, and the Loihi
    integers (forward_int) against it, on the 360 digits test samples: ~1 min."""
    import logging
    import tempfile

    import nir
    import norse.torch as nt
    import numpy as np
    import torch
    from snntorch.import_nir import import_from_nir

    from spikeport import pipeline
    from spikeport.data import float_view
    from spikeport.export.nir_export import export_run
    from spikeport.importer.conventions import PRODUCERS
    from spikeport.importer.simulate import simulate
    from spikeport.nirfmt.flat import load_graph
    from spikeport.nirfmt.load import load_nir
    from spikeport.train import checkpoint
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train
    from tests.test_nir_peers import _record, _run_peer

    logging.getLogger().setLevel(logging.ERROR)
    out = {}
    with tempfile.TemporaryDirectory(prefix="spikeport-claims-peers-") as tmp:
        run = Path(tmp) / "tiny_run"
        train(TrainConfig(data="digits", epochs=12, hidden=[64], time_steps=12), run)  # the fixture's net
        path = export_run(run)
        net = load_nir(path)
        x_int, _, _ = pipeline.test_inputs(net, "digits", None, None)
        xf = float_view(x_int, "direct").reshape(x_int.shape[0], x_int.shape[1], -1)
        layers = [p.name for p in net.populations]
        ours = simulate(load_graph(path), PRODUCERS["spikeport"], 1e-4, xf)
        mine = [ours.outputs[n] > 0 for n in layers]

        def compare(tag: str, module, stateful: bool) -> None:
            rec = _record(module, layers)
            _run_peer(module, xf, stateful)
            theirs = [torch.stack(rec[n]).numpy() > 0 for n in layers]
            for name, a, b in zip(("hidden", "output"), theirs, mine):
                out[f"{tag}.{name}.mismatches"] = int((a != b).sum())
            out[f"{tag}.agreement"] = 100 * float(np.mean(theirs[-1].sum(0).argmax(1) == mine[-1].sum(0).argmax(1)))

        compare("snntorch", import_from_nir(nir.read(str(path))), stateful=False)
        compare("norse_1e-4", nt.from_nir(nir.read(str(path)), dt=1e-4), stateful=True)
        compare("norse_1e-3", nt.from_nir(nir.read(str(path))), stateful=True)
        out["spikes.hidden"], out["spikes.output"] = (int(s.sum()) for s in mine)
        model, _, _ = checkpoint.load(run)
        with torch.no_grad():
            qat = [s.numpy() > 0 for s in model(torch.from_numpy(xf), qat=True)]  # the trainer's float forward
        for name, a, b in zip(("hidden", "output"), qat, mine):
            out[f"qat.{name}.mismatches"] = int((a != b).sum())
        out["qat.agreement"] = 100 * float(np.mean(qat[-1].sum(0).argmax(1) == mine[-1].sum(0).argmax(1)))
        ints = [s.numpy() for s in model.forward_int(torch.from_numpy(x_int.astype(np.int64)))]
        for name, a, b in zip(("hidden", "output"), ints, mine):
            out[f"loihi.{name}.mismatches"] = int((a != b).sum())
            out[f"loihi.{name}.agree"] = 100 * float(np.mean(a == b))
        out["loihi.agreement"] = 100 * float(np.mean(ints[-1].sum(0).argmax(1) == mine[-1].sum(0).argmax(1)))
    return out


def fuzz_figures() -> dict[str, float]:
    """The fast fuzz campaign of docs/reliability.md (tests/test_fuzz.py's seeds 0..n-1 per target, on the
    test fixture's network): cases, error, ok, other per target and in total: ~2 min."""
    import tempfile

    from spikeport.export.nir_export import export_run
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train
    from tests import test_fuzz

    out = {}
    with tempfile.TemporaryDirectory(prefix="spikeport-claims-fuzz-") as tmp:
        run = Path(tmp) / "tiny_run"
        train(TrainConfig(data="digits", epochs=12, hidden=[64], time_steps=12), run)  # tests/conftest.py tiny_run
        export_run(run)
        base = test_fuzz.Base(run=run, work=Path(tmp) / "work")
        base.work.mkdir()
        for target, n in test_fuzz.FAST.items():
            res = test_fuzz.run_target(target, range(n), base)
            other = sum(1 for f in res["failures"] if "took" not in f[2])  # timeouts and other exceptions
            counts = {"cases": n, "error": res["counts"]["error"], "ok": res["counts"]["ok"], "other": other}
            for k, v in counts.items():
                out[f"{target}.{k}"] = v
                out[f"total.{k}"] = out.get(f"total.{k}", 0) + v
    return out


def netx_targets_figures() -> dict[str, float]:
    """benchmarks/netx_targets.py: the target lava / netx table of docs/netx.md, every row (~10 min)."""
    return _module("netx_targets").run_all(log=lambda line: print(line, flush=True))


def fmnist_figures() -> dict[str, float]:
    """benchmarks/fmnist_reduced.py: every examples/*_fmnist.toml, reduced (~15 min on 2 cores)."""
    rows = _module("fmnist_reduced").run_all(log=lambda line: print(line, flush=True))
    return {f"{r['config']}.{k}": v for r in rows for k, v in r.items() if isinstance(v, (int, float))}
