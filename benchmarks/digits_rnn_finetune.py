"""Figures of docs/nir_peers.md for the snnTorch digits RNN (RSynaptic(32, reset to zero, biases) ->
Synaptic(10), next-step reset, imported with ``--allow-approx``): import and fine-tuning, 8- and 16-bit
weights.

The network is tests/test_finetune.py's ``snn_digits`` (snnTorch trains it 5 epochs on all 1437 digits
train samples, direct-encoded over 12 steps; exported by snnTorch's ``export_to_nir``). It is imported
with those samples as ``--inputs`` (``--labels``; default calibration: 256 of them, the import scores the
other 1181) and fine-tuned (``--finetune 8 --target producer --lr 2e-3``, the defaults otherwise: 20 %
held out, drawn from the scored samples) once per ``--weight-bits``. Printed: the import's agreement on
its scored samples; before / after agreement with snnTorch and accuracy on the held-out samples (which
neither calibration nor fine-tuning saw); ``--lava``: Lava == emulator == checkpoint on them.

Usage: ``python benchmarks/digits_rnn_finetune.py [--lava] [--bits 8 16] [--epochs 8] [--lr 2e-3]``
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from spikeport import pipeline
    from spikeport.importer.finetune import finetune_run
    from spikeport.importer.run import import_graph
    from tests.test_finetune import snn_digits

    ap = argparse.ArgumentParser()
    ap.add_argument("--lava", action="store_true")
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from spikeport.nirfmt import guard

    guard.READ_TIMEOUT_S = max(guard.READ_TIMEOUT_S, 120.0)  # a loaded machine: the isolated read may be slow
    tmp = Path(tempfile.mkdtemp(prefix="digits-rnn-"))
    torch.manual_seed(0)
    d = snn_digits(tmp, None, 5)
    print(f"snnTorch RNN: train-split accuracy {100 * d['accuracy']:.2f} %", flush=True)
    for bits in args.bits:
        run = tmp / f"run{bits}"
        info = import_graph(d["graph"], dt=1e-4, out=run, producer="snntorch", reset="zero", allow_approx=True,
                            inputs=d["x"], labels=d["y"], weight_bits=bits)
        a = info["agreement"]
        print(f"--weight-bits {bits}: import calibrated on {len(info['samples']['calibration_indices'])}, scored "
              f"{a['samples']}: agreement with snnTorch {100 * a['prediction_agreement']:.2f} %, accuracy "
              f"{100 * a['integer_accuracy']:.2f} % (snnTorch {100 * a['reference_accuracy']:.2f} %)", flush=True)
        res = finetune_run(run, epochs=args.epochs, target="producer", lr=args.lr)
        b, f = res["before"], res["after"]
        print(f"  fine-tuned {args.epochs} epochs, lr {args.lr:g} ({res['train_samples']} trained, "
              f"{res['heldout_samples']} held out, {res['train_seconds']:.1f} s, kept epoch "
              f"{res['history'][-1]['kept_epoch']}): agreement {100 * b['prediction_agreement']:.2f} -> "
              f"{100 * f['prediction_agreement']:.2f} %, accuracy {100 * b['integer_accuracy']:.2f} -> "
              f"{100 * f['integer_accuracy']:.2f} % (snnTorch {100 * f['producer_accuracy']:.2f} %)", flush=True)
        if args.lava:
            par = pipeline.parity(run, backend="lava,emulator")
            print(f"  parity (held-out): {par['spike_mismatches']} spike mismatches {par['spike_pairs']}, "
                  f"calibrated among scored: {par['scored_samples'].get('calibrated_among_scored')}, "
                  f"fine-tuned among scored: {par['scored_samples'].get('trained_among_scored')}", flush=True)
    print(f"machine: {platform.platform()}, python {platform.python_version()}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
