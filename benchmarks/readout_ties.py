"""How much the spike-count readout's ties cost each trained run, measured on the deployed integers.

For every run folder: the exported graph (``model.nir``) runs on the emulator over the whole test set
with the neuron states recorded (the emulator equals Lava's fixed_pt model spike for spike, tested), and
the script prints

* accuracy of the deployed readout (argmax of output spike counts, ties to the lowest class index);
* the share of test images whose top count is shared by two or more classes, and the top count there;
* the ceiling of any tie-break: the share of images whose label is among the classes with the top count;
* what tie-breaks that Loihi could compute would give: the earliest first spike; the synaptic current u
  of the output neurons at the last step; u summed over the sample. These are *measurements*, not
  readouts spikeport deploys: the deployed readout stays spike counts.

Usage: ``python benchmarks/readout_ties.py runs/lif_fmnist runs/klif_fmnist ...`` (folders that
``spikeport train`` + ``spikeport export`` wrote; the data set is read from their config; with direct encoding the inputs
are the ones ``spikeport train`` evaluated, with rate or latency encoding another random draw).
"""
from __future__ import annotations

import sys

import numpy as np


def tie_report(spikes: np.ndarray, u: np.ndarray, labels: np.ndarray) -> dict:
    """spikes [T, B, C] bool and u [T, B, C] int of the output population; labels [B]."""
    T = spikes.shape[0]
    counts = spikes.sum(axis=0).astype(np.float64)
    top = counts.max(axis=1)
    n_top = (counts == top[:, None]).sum(axis=1)
    tied = n_top > 1
    rows = np.arange(len(labels))

    def acc(score: np.ndarray) -> float:
        return float((score.argmax(axis=1) == labels).mean())

    def tie_break(secondary: np.ndarray) -> float:
        """counts first; ``secondary`` (scaled into (-0.5, 0.5)) only orders classes with equal counts."""
        span = np.abs(secondary).max(axis=1, keepdims=True) + 1.0
        return acc(counts + 0.49 * secondary / span)

    first = np.where(spikes.any(axis=0), spikes.argmax(axis=0), T)
    return {
        "accuracy": acc(counts),
        "tied_share": float(tied.mean()),
        "top_count_when_tied": np.bincount(top[tied].astype(int), minlength=T + 1).tolist(),
        "label_in_top_share": float((counts[rows, labels] == top).mean()),
        "tiebreak_first_spike": tie_break(-first.astype(np.float64)),
        "tiebreak_u_last": tie_break(u[-1].astype(np.float64)),
        "tiebreak_u_sum": tie_break(u.sum(axis=0).astype(np.float64)),
    }


def main(runs: list[str]) -> None:
    from spikeport.deploy import emulator
    from spikeport.nirfmt.load import load_nir
    from spikeport.train import checkpoint
    from spikeport.train.loop import _encode_batch

    for run in runs:
        _, cfg, _ = checkpoint.load(run)
        ds = checkpoint.dataset_for(cfg)
        net = load_nir(f"{run}/model.nir")
        x = _encode_batch(ds.x_test, cfg, 10_000).astype(np.int64)  # the encoding evaluate() uses
        spikes, u = [], []
        for lo in range(0, x.shape[1], 1000):  # bounded memory: a conv net's states for 10k images are GiBs
            res = emulator.run(net, x[:, lo:lo + 1000], record_states=True)
            spikes.append(res.spikes[-1])
            u.append(res.states[-1][0])
        rep = tie_report(np.concatenate(spikes, axis=1), np.concatenate(u, axis=1), np.asarray(ds.y_test))
        print(f"{run}: T={cfg.time_steps}, {len(ds.y_test)} test images")
        for key, val in rep.items():
            print(f"  {key:24s} {val if isinstance(val, list) else f'{100 * val:.2f} %'}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
