"""Fine-tuning imported graphs on Loihi integers (``spikeport import ... --finetune``, ``train --from``).

Independent references: the producer's network is trained and exported by snnTorch itself
(``export_to_nir``); the producer's predictions come from spikeport's float reference, which equals
snnTorch spike for spike (tests/test_import.py); the fine-tuned graph is run by Lava itself and must
equal the emulator and the fine-tuned module's integer forward, spike for spike. The conv mechanics
run on a Sinabs-style graph written with nir's own classes (Sinabs itself: tests/peers/test_sinabs.py).
"""
import json

import nir
import numpy as np
import pytest
import torch

from spikeport import pipeline
from spikeport.errors import SpikeportError
from spikeport.importer.finetune import finetune_run
from spikeport.importer.run import import_graph, load_source
from spikeport.importer.simulate import predict, simulate
from spikeport.nirfmt.load import load_nir
from spikeport.report.markdown import summary_rows
from tests.conftest import cli

T_RNN = 12
KEEP_EPOCHS, KEEP_LR = 2, 5e-2  # test_keep_best_keeps_the_first_best_epoch: scores 0.2, 0.233, 0.233


class SnnRNN(torch.nn.Module):
    """snnTorch: Linear (bias) -> RSynaptic (all-to-all recurrence, reset to zero) -> Linear (bias) ->
    Synaptic; states passed explicitly (RSynaptic with init_hidden fails in snnTorch 1.0.0)."""

    def __init__(self, n: int = 32):
        import snntorch as snn

        super().__init__()
        torch.manual_seed(0)
        self.n, full = n, lambda k, v: torch.full((k,), v)  # noqa: E731
        self.fc1 = torch.nn.Linear(64, n)
        self.rlif = snn.RSynaptic(alpha=full(n, 0.5), beta=full(n, 0.9), threshold=full(n, 1.0), linear_features=n,
                                  reset_delay=False, reset_mechanism="zero")
        self.fc2 = torch.nn.Linear(n, 10)
        self.lif2 = snn.Synaptic(alpha=full(10, 0.5), beta=full(10, 0.9), threshold=full(10, 1.0), reset_delay=False,
                                 reset_mechanism="zero")

    def forward(self, x):
        """x [B, 64]: one step (what export_to_nir traces); [T, B, 64]: output spikes [T, B, 10]."""
        steps = x.unsqueeze(0) if x.ndim == 2 else x
        b = steps.shape[1]
        spk, syn, mem = (torch.zeros(b, self.n) for _ in range(3))
        syn2, mem2, out = torch.zeros(b, 10), torch.zeros(b, 10), []
        for t in range(steps.shape[0]):
            spk, syn, mem = self.rlif(self.fc1(steps[t]), spk, syn, mem)
            s2, syn2, mem2 = self.lif2(self.fc2(spk), syn2, mem2)
            out.append(s2)
        return out[0] if x.ndim == 2 else torch.stack(out)


def snn_digits(folder, n: int | None, epochs: int) -> dict:
    """Digits (train split, first n) direct-encoded over T_RNN steps; SnnRNN trained on them by snnTorch's
    own surrogate BPTT and exported with snnTorch's export_to_nir."""
    from snntorch.export_nir import export_to_nir

    from spikeport.data import encode, float_view, load_dataset

    ds = load_dataset("digits", None, seed=0, n_bins=T_RNN)
    xs, ys = ds.x_train[:n], ds.y_train[:n]
    enc = encode(xs, T_RNN, "direct")
    xf = float_view(enc, "direct").reshape(T_RNN, len(ys), -1).astype(np.float32)
    net, X, Y = SnnRNN(), torch.from_numpy(xf), torch.from_numpy(ys.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(Y))
        for b in range(0, len(Y), 64):
            idx = perm[b:b + 64]
            loss = torch.nn.functional.cross_entropy(net(X[:, idx]).sum(0), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = float((net(X).sum(0).argmax(1) == Y).float().mean())
    nir.write(str(folder / "rnn.nir"), export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0]))
    np.save(folder / "x.npy", np.swapaxes(xf, 0, 1))
    np.save(folder / "y.npy", ys)
    return {"graph": folder / "rnn.nir", "x": folder / "x.npy", "y": folder / "y.npy", "accuracy": acc}


def check_finetuned_parity(run, samples: int | None = None) -> dict:
    """Parity of a fine-tuned run on Lava and the emulator: the checkpoint's integer forward is the exact
    reference (0 spike mismatches against both backends and between them); the producer's predictions
    (float simulation of source.nir, recomputed here) give float accuracy and producer agreement."""
    res = pipeline.parity(run, backend="lava,emulator", samples=samples)
    assert res["finetuned"] and res["passed"] and res["spike_mismatches"] == 0
    assert res["spike_pairs"] == ["reference-lava", "reference-emulator", "lava-emulator"]
    fg, prod, dt, _ = load_source(run)
    x = np.swapaxes(np.load(run / "inputs.npy"), 0, 1)[:, :samples]
    theirs = predict(simulate(fg, prod, dt, x))
    outs = np.load(run / "parity_outputs.npz")
    ours = outs["reference"].argmax(axis=1)
    assert res["producer_agreement"] == pytest.approx(float(np.mean(ours == theirs)))
    if "labels" in outs.files:
        assert res["float_accuracy"] == pytest.approx(float(np.mean(theirs == outs["labels"])))
    rows = dict(summary_rows({"parity": res}))
    assert any(k.startswith("fine-tuning (") for k in rows) and any(k.startswith("agreement with the producer")
                                                                  for k in rows)
    return res


@pytest.fixture(scope="module")
def rnn_small(tmp_path_factory):
    return snn_digits(tmp_path_factory.mktemp("rnn"), 480, 3)


def test_recurrent_snntorch_finetune_raises_agreement_and_deploys_exactly(rnn_small, tmp_path):
    run = tmp_path / "run"
    info = import_graph(rnn_small["graph"], dt=1e-4, out=run, producer="snntorch", reset="zero", allow_approx=True,
                        inputs=rnn_small["x"], labels=rnn_small["y"])
    assert info["network"] == "64-32-10" and info["layers"][0].get("recurrent_rel_error") is not None
    res = finetune_run(run, epochs=3, target="producer", holdout=0.25)
    before, after = res["before"]["prediction_agreement"], res["after"]["prediction_agreement"]
    print(f"recurrent snnTorch (digits, {res['train_samples']} trained, {res['heldout_samples']} held out): "
          f"agreement with the producer {before:.4f} -> {after:.4f}; accuracy {res['before']['integer_accuracy']:.4f} "
          f"-> {res['after']['integer_accuracy']:.4f} (producer {res['after']['producer_accuracy']:.4f})")
    assert after >= before and res["integer_forward_vs_emulator_mismatches"] == 0
    assert (res["train_samples"], res["heldout_samples"]) == (360, 120)
    saved = json.loads((run / "import.json").read_text())
    assert saved["producer"] == "snntorch" and saved["dt"] == 1e-4 and saved["conventions"]["reset"] == "zero"
    assert saved["finetune"]["after"] == res["after"] and saved["approximations"] == info["approximations"]
    assert {p.name for p in run.iterdir()} >= {"model.nir", "source.nir", "model.safetensors", "config.json",
                                                "train_inputs.npy", "train_labels.npy", "inputs.npy", "labels.npy"}
    assert np.load(run / "inputs.npy").shape[0] == 120 and load_nir(run / "model.nir").populations[0].recurrent
    check_finetuned_parity(run, samples=40)


def epoch_scores(run, tmp_path, epochs: int, **kw) -> list[float]:
    """Each epoch's agreement with the producer on the training samples, derived without the training
    loop's own scoring: the import (epoch 0) and the networks after 1..epochs epochs (``keep="last"``,
    same seed and split: the same batches), each model.nir run by the emulator on the training samples
    against the producer's float predictions (``importer.simulate``), or the labels with ``target="labels"``."""
    import shutil

    from spikeport.core.readout import predict_net
    from spikeport.deploy import emulator

    base = tmp_path / "epoch0"
    shutil.copytree(run, base)
    folders = [base] + [tmp_path / f"last{k}" for k in range(1, epochs + 1)]
    for k, out in enumerate(folders[1:], 1):
        finetune_run(base, epochs=k, out=out, keep="last", **kw)
    fg, prod, dt, _ = load_source(base)
    x = np.swapaxes(np.load(folders[-1] / "train_inputs.npy"), 0, 1)
    theirs = predict(simulate(fg, prod, dt, x)) if kw.get("target") != "labels" else \
        np.load(folders[-1] / "train_labels.npy")
    scores = []
    for folder in folders:
        net = load_nir(folder / "model.nir")
        xi = np.rint(x).astype(np.int64).reshape(x.shape[0], x.shape[1], -1)
        run = emulator.run(net, xi)
        scores.append(float(np.mean(predict_net(net, run.spikes, run.values) == theirs)))
    return scores


def test_keep_best_keeps_the_first_best_epoch(tmp_path):
    """``--keep best`` keeps the epoch whose integers score best on the training samples (here: accuracy
    on labels the graph does not fit; the import as epoch 0, ties to the earliest), checked against scores
    derived without the training loop (:func:`epoch_scores`) on a dense graph, whose module starts from
    the import's integers."""
    from tests.test_import_errors import _graph, _write

    graph = _write(_graph(n_in=6, n=5), tmp_path / "g.nir")
    np.save(tmp_path / "x.npy", (np.random.default_rng(1).random((40, 8, 6)) < 0.5).astype(np.float32))
    np.save(tmp_path / "y.npy", np.random.default_rng(2).integers(0, 5, 40))
    run = tmp_path / "run"
    import_graph(graph, dt=1e-3, out=run, producer="spikeport", inputs=tmp_path / "x.npy", labels=tmp_path / "y.npy")
    kw = dict(holdout=0.25, seed=0, lr=KEEP_LR, target="labels")
    scores = epoch_scores(run, tmp_path, epochs=KEEP_EPOCHS, **kw)
    res = finetune_run(run, epochs=KEEP_EPOCHS, **kw)
    assert [h["train_score"] for h in res["history"][:-1]] == pytest.approx(scores)
    assert res["history"][-1]["kept_epoch"] == int(np.argmax(scores))  # np.argmax: the first best
    assert 0 < int(np.argmax(scores)) < KEEP_EPOCHS == len(scores) - 1 and max(scores) == scores[-1]  # a later tie


def sinabs_style_cnn(path):
    """A Sinabs-style CNN written with nir's own classes: Conv2d -> IF -> SumPool2d -> Conv2d -> IF ->
    Flatten -> Linear -> IF (what Sinabs's to_nir writes for its IAF CNN)."""
    rng = np.random.default_rng(5)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "conv0": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 0.5, (4, 1, 3, 3)), stride=1, padding=1,
                            dilation=1, groups=1, bias=np.zeros(4)),
        "if0": nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.ones((4, 8, 8))),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv1": nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0, 0.4, (8, 4, 3, 3)), stride=1, padding=0,
                            dilation=1, groups=1, bias=np.zeros(8)),
        "if1": nir.IF(r=np.ones((8, 2, 2)), v_threshold=np.ones((8, 2, 2))),
        "flat": nir.Flatten(input_type={"input": np.array([8, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=rng.normal(0, 0.5, (10, 32))),
        "if2": nir.IF(r=np.ones(10), v_threshold=np.ones(10)),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    order = list(nodes)
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=False))
    return path


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_conv_finetune_distils_without_labels_and_continues_from_its_checkpoint(tmp_path):
    graph = sinabs_style_cnn(tmp_path / "cnn.nir")
    x = (np.random.default_rng(0).random((120, 8, 1, 8, 8)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = tmp_path / "run"
    import_graph(graph, dt=1.0, out=run, producer="sinabs", allow_approx=True, inputs=tmp_path / "x.npy")
    res = finetune_run(run, epochs=2, holdout=0.25, seed=1)
    assert res["target"] == "producer" and "integer_accuracy" not in res["after"]  # no labels: agreement only
    assert [layer["weight_exp"] for layer in res["layers"][:2]] == [0, 0]  # convolutions run as Lava Conv
    net = load_nir(run / "model.nir")
    assert [p.input.kind for p in net.populations] == ["conv", "conv", "dense"]
    p = check_finetuned_parity(run, samples=12)
    assert p["float_accuracy"] is None and p["labels"] == "no labels: agreement only"
    again = finetune_run(run, epochs=2, out=tmp_path / "run2", schedule="cosine", keep="last")  # its checkpoint
    assert again["started_from"] == "the run's fine-tuned checkpoint"
    assert again["before"] == pytest.approx(res["after"]) and again["heldout_samples"] == res["heldout_samples"]
    assert again["history"][-1] == {"kept_epoch": 2}  # keep last: the last epoch, whatever its training score
    saved = json.loads((tmp_path / "run2" / "import.json").read_text())["finetune"]
    assert (saved["lr_schedule"], saved["keep"], res["lr_schedule"], res["keep"]) == ("cosine", "last", "constant",
                                                                                      "best")


def test_finetune_refuses_what_it_cannot_use(tmp_path, rnn_small):
    with pytest.raises(SpikeportError, match="not a run folder written by `spikeport import"):
        finetune_run(tmp_path, epochs=1)
    run = tmp_path / "run"
    import_graph(rnn_small["graph"], dt=1e-4, out=run, producer="snntorch", reset="zero", allow_approx=True,
                 inputs=rnn_small["x"])
    with pytest.raises(SpikeportError, match="--target labels needs labels"):
        finetune_run(run, epochs=1, target="labels")
    with pytest.raises(SpikeportError, match="^--lr-schedule must be one of constant, cosine .*'linear'"):
        finetune_run(run, epochs=1, schedule="linear")
    with pytest.raises(SpikeportError, match="--keep one of best, last"):
        finetune_run(run, epochs=1, keep="first")
    proc = cli("train", "--out", str(tmp_path / "plain"), "--lr-schedule", "cosine")  # fine-tuning options only
    assert proc.returncode == 2 and "apply to fine-tuning (train --from RUN) only" in proc.stderr
    finetune_run(run, epochs=1, holdout=0.5)
    blob = bytearray((run / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (run / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(SpikeportError, match="model.safetensors: does not match config.json"):
        pipeline.parity(run, backend="emulator")


@pytest.mark.slow
def test_recurrent_snntorch_finetune_raises_held_out_agreement(tmp_path):
    """The whole digits train split, snnTorch trained 5 epochs, imported (256 samples calibrate) and
    fine-tuned 8 epochs on 80 % (the figures in docs/nir_peers.md, ``benchmarks/digits_rnn_finetune.py``):
    on the held-out 20 %, drawn from samples the import did not calibrate on, fine-tuning raises agreement
    with the producer by at least 2 points (measured 93.4 -> 96.9 %: the issue's 97 % is not reached, one
    held-out sample short); Lava == emulator == checkpoint."""
    d = snn_digits(tmp_path, None, 5)
    run = tmp_path / "run"
    import_graph(d["graph"], dt=1e-4, out=run, producer="snntorch", reset="zero", allow_approx=True,
                 inputs=d["x"], labels=d["y"])
    res = finetune_run(run, epochs=8, target="producer")
    print(f"snnTorch train accuracy {d['accuracy']:.4f}; held-out ({res['heldout_samples']}): "
          f"{json.dumps({k: res[k] for k in ('before', 'after')})}")
    assert res["after"]["prediction_agreement"] >= res["before"]["prediction_agreement"] + 0.02
    p = check_finetuned_parity(run)
    assert p["scored_samples"]["calibrated_among_scored"] == 0 == p["scored_samples"]["trained_among_scored"]
