"""Post-training quantization figures of docs/nir_peers.md (``spikeport import``, no fine-tuning): how often
the deployed Loihi integers (the emulator, equal to Lava: tested) predict what the producer's float
network predicts, on test samples that calibration never saw.

Each graph is imported with samples of the digits *train* split as ``--inputs`` (the default
calibration: 256 of them; the import scores the others), then ``spikeport parity`` runs it on the 360
digits *test* samples (``--inputs``): prediction agreement with the float reference (which equals the
producer's own simulator spike for spike, tests/test_import.py) and per-layer spike agreement.

Graphs (tests/test_import.py's, tests/test_export_imported.py's):
* snnTorch CUBA MLP 64-64-10 with the float weights of the test fixture's run (``spikeport train``
  digits, 12 epochs, T = 12), exported by snnTorch's ``export_to_nir``: default import, and ``--netx``;
  again with Linear biases of 0.05 (exact bias lines by default; ``--netx --allow-approx``: voltage biases);
* Norse LIFBox with the same weights x10 (not trained for LIF), exported by Norse's ``to_nir``;
* ``--sinabs``: the random Sinabs CNN of tests/peers (``sinabs_make.py cnn``; random spikes of density
  0.3 as inputs, 256 to calibrate, 360 others scored) and the Sinabs CNN trained on digits
  (``sinabs_make.py train-cnn``) imported with ``--netx`` (spike-count readout), exported by
  ``export --netx`` and run by lava-dl's netx itself on Lava beside the emulator on the test split, and
  imported with ``--readout current_sum``.

Usage: ``python benchmarks/import_agreement.py [--sinabs | --sinabs-only]``
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tiny_run(tmp: Path) -> Path:
    """The test fixture's run (tests/conftest.py ``tiny_run``): digits, 12 epochs, 64 hidden, T = 12."""
    from spikeport.export.nir_export import export_run
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    run = tmp / "tiny_run"
    train(TrainConfig(data="digits", epochs=12, hidden=[64], time_steps=12), run)
    export_run(run)
    return run


def digits_files(tmp: Path, T: int) -> dict:
    """Direct-encoded digits as the test fixture builds them: train and test splits [N, T, 64] .npy + labels."""
    from spikeport.data import encode, float_view, load_dataset

    ds = load_dataset("digits", None, seed=0, n_bins=T)
    out = {}
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        xf = float_view(encode(np.asarray(x), T, "direct"), "direct").reshape(T, len(y), -1)
        np.save(tmp / f"{split}_x.npy", np.swapaxes(xf, 0, 1))
        np.save(tmp / f"{split}_y.npy", np.asarray(y))
        out[split] = {"inputs": tmp / f"{split}_x.npy", "labels": tmp / f"{split}_y.npy"}
    return out


def measure(name: str, graph: Path, out: Path, calib: dict, test: dict, backend: str = "emulator", **kw) -> dict:
    """Import ``graph`` with the ``calib`` files, then parity on the ``test`` files; prints one row."""
    from spikeport import pipeline
    from spikeport.importer.run import import_graph

    info = import_graph(graph, out=out, inputs=calib["inputs"], labels=calib.get("labels"), **kw)
    if backend.startswith("netx"):
        from spikeport.export.netx_export import export_netx

        export_netx(out / "model.nir", out / "model.net")
    par = pipeline.parity(out, backend=backend, min_agreement=0.0, **test)
    pct = lambda v: "-" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    spikes = ", ".join(f"{100 * a:.1f}" for a in par["reference_spike_agreement"])
    how = "exact" if info["exact"] else f"{len(info['approximations'])} approximations"
    mism = "" if par["spike_mismatches"] is None else f": {par['spike_mismatches']} spike mismatches"
    outs = np.load(out / "parity_outputs.npz")
    classes = len(np.unique(outs[str(outs["sides"][0]).replace(" ", "_")].argmax(axis=1)))
    print(f"| {name} | {len(info['samples']['calibration_indices'])} | {par['samples']} | "
          f"{pct(par['prediction_agreement'])} | {spikes} % | {classes} | {pct(par['reference_accuracy'])} / "
          f"{pct(par['backend_accuracy'])} | {how} | {backend}{mism} |", flush=True)
    return par


def snn_rows(tmp: Path) -> None:
    import torch

    from spikeport.train import checkpoint
    from tests.test_import import SnnMLP, _export_snn

    run = tiny_run(tmp)
    model, cfg, _ = checkpoint.load(run)
    weights = [layer.weight.detach().clone() for layer in model.layers]
    files = digits_files(tmp, cfg.time_steps)
    snn = dict(dt=1e-4, producer="snntorch")
    plain = _export_snn(SnnMLP(weights, cfg), tmp / "plain.nir")
    measure("snnTorch CUBA MLP", plain, tmp / "p0", files["train"], files["test"], **snn)
    measure("snnTorch CUBA MLP, --netx", plain, tmp / "p1", files["train"], files["test"], netx=True, **snn)
    biased = SnnMLP(weights, cfg)
    for fc in (biased.fc1, biased.fc2):
        fc.bias = torch.nn.Parameter(torch.full((fc.out_features,), 0.05))
    path = _export_snn(biased, tmp / "biased.nir")
    measure("snnTorch CUBA MLP, biases 0.05 (exact lines)", path, tmp / "b0", files["train"], files["test"], **snn)
    measure("snnTorch CUBA MLP, biases 0.05, --netx --allow-approx (voltage biases)", path, tmp / "b1",
            files["train"], files["test"], netx=True, allow_approx=True, **snn)
    measure("Norse LIFBox, same weights x10", norse_graph(weights, tmp / "norse.nir"), tmp / "n0", files["train"],
            files["test"], dt=1e-6, producer="norse")


def norse_graph(w, path: Path) -> Path:
    """tests/test_import.py::test_norse_graph_round_trip's network, written by Norse's to_nir (dt 1e-3,
    read back at dt = 1e-6 as that test explains)."""
    import nir
    import norse.torch as nt
    import torch
    from norse.torch.module.lif_box import LIFBoxCell, LIFBoxParameters

    cells = [LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.full((m.shape[0],), 100.0), v_th=torch.ones(m.shape[0]),
                                         v_leak=torch.zeros(m.shape[0]))) for m in w]
    model = nt.SequentialState(torch.nn.Linear(64, w[0].shape[0], bias=False), cells[0],
                               torch.nn.Linear(w[0].shape[0], 10, bias=False), cells[1])
    model[0].weight.data, model[2].weight.data = w[0] * 10, w[1] * 10
    nir.write(str(path), nt.to_nir(model, torch.zeros(1, 64), dt=1e-3))
    return path


def sinabs_rows(tmp: Path) -> None:
    """The random Sinabs CNN (its own spikes are tested equal to the float reference in tests/peers) and
    the trained one for --netx."""
    import subprocess

    from benchmarks.sinabs_finetune_study import frames, sinabs_graph, sinabs_python
    from spikeport.data import load_dataset

    proc = subprocess.run([str(sinabs_python()), str(ROOT / "tests" / "peers" / "sinabs_make.py"), str(tmp), "cnn"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    rng = np.random.default_rng(7)
    for split, n in (("cal", 256), ("scored", 360)):
        np.save(tmp / f"rand_{split}.npy", (rng.random((n, 8, 1, 8, 8)) < 0.3).astype(np.float32))
    measure("random Sinabs CNN, --allow-approx", tmp / "cnn.nir", tmp / "s0", {"inputs": tmp / "rand_cal.npy"},
            {"inputs": tmp / "rand_scored.npy"}, dt=1.0, producer="sinabs", allow_approx=True)
    ds = load_dataset("digits")
    graph, d = sinabs_graph(tmp, ds)
    np.save(tmp / "s_train_x.npy", frames(ds.x_train[:, 0], d["x"].shape[1]))
    np.save(tmp / "s_train_y.npy", ds.y_train)
    np.save(tmp / "s_test_x.npy", d["x"])
    np.save(tmp / "s_test_y.npy", d["y"])
    train = {"inputs": tmp / "s_train_x.npy", "labels": tmp / "s_train_y.npy"}
    test = {"inputs": tmp / "s_test_x.npy", "labels": tmp / "s_test_y.npy"}
    print(f"(Sinabs's own test accuracy {100 * float(d['accuracy']):.2f} %)")
    measure("trained Sinabs CNN, --allow-approx", graph, tmp / "t0", train, test, dt=1.0, producer="sinabs",
            allow_approx=True, backend="lava,emulator")
    measure("trained Sinabs CNN, --allow-approx --readout current_sum", graph, tmp / "t2", train, test, dt=1.0,
            producer="sinabs", allow_approx=True, readout="current_sum")
    measure("trained Sinabs CNN, --netx --allow-approx", graph, tmp / "t1", train, test, dt=1.0, producer="sinabs",
            allow_approx=True, netx=True, backend="netx,emulator")


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--sinabs", action="store_true", help="also the Sinabs CNNs (needs .venv-sinabs)")
    ap.add_argument("--sinabs-only", action="store_true", help="the Sinabs CNNs alone")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from spikeport.nirfmt import guard

    guard.READ_TIMEOUT_S = max(guard.READ_TIMEOUT_S, 120.0)  # a loaded machine: the isolated read may be slow
    tmp = Path(tempfile.mkdtemp(prefix="import-agreement-"))
    print("| graph | calibration samples (train split) | scored test samples | integers vs float reference "
          "predictions | spike agreement per layer | classes the float reference predicts | accuracy float / "
          "integers | import | backends |")
    print("|---|---|---|---|---|---|---|---|---|")
    if not args.sinabs_only:
        snn_rows(tmp)
    if args.sinabs or args.sinabs_only:
        sinabs_rows(tmp)
    print(f"machine: {platform.platform()}, python {platform.python_version()}, torch {torch.__version__}, "
          f"numpy {np.__version__}")


if __name__ == "__main__":
    main()
