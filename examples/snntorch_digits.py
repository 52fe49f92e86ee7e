"""A peer's graph to import: an snnTorch CUBA-LIF MLP trained on scikit-learn's digits, written as NIR.

Writes OUT/graph.nir (snnTorch's ``export_to_nir``: Linear -> Synaptic -> Linear -> Synaptic, reset to
zero in the spike's step, dt = 1e-4 s as snnTorch hard-codes it), OUT/inputs.npy (float32 0/1 spikes
[N, T, 64]: pixel i of a test image spikes at each step with probability pixel / 16, seeded) and
OUT/labels.npy (int64 [N]), the 360 test samples of spikeport's digits split. Then, as in the README:

    spikeport import OUT/graph.nir --dt 1e-4 --producer snntorch --reset zero --weight-bits 16 \\
        --inputs OUT/inputs.npy --labels OUT/labels.npy --out RUN
    spikeport parity RUN --backend lava,emulator

(16-bit weights: with 8 this small net's integer predictions fall just under parity's default gate of 99 %
agreement with snnTorch's float network; both are what `spikeport import` reports.)

Run: .venv/bin/python examples/snntorch_digits.py [OUT] (about a minute on a CPU).
"""
import sys
from pathlib import Path

import nir
import numpy as np
import snntorch as snn
from snntorch import utils as snn_utils
import torch
from snntorch.export_nir import export_to_nir

from spikeport.data import load_dataset

T, HIDDEN, EPOCHS = 12, 64, 5


def synaptic(n: int) -> snn.Synaptic:
    """n CUBA-LIF neurons (per-neuron parameters, so that NIR knows the layer's size)."""
    return snn.Synaptic(alpha=torch.full((n,), 0.5), beta=torch.full((n,), 0.9), threshold=torch.full((n,), 1.0),
                        reset_mechanism="zero", reset_delay=False, init_hidden=True)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(64, HIDDEN, bias=False), torch.nn.Linear(HIDDEN, 10, bias=False)
        self.lif1, self.lif2 = synaptic(HIDDEN), synaptic(10)

    def forward(self, x):  # one step [B, 64] -> output spikes [B, 10]
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))

    def counts(self, x):  # x [T, B, 64] spikes -> output spike counts [B, 10]
        snn_utils.reset(self)
        return sum(self(x_t) for x_t in x)


def spikes(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[N, 64] pixels in [0, 1] -> float32 0/1 [T, N, 64], each pixel at its value as a rate."""
    return (rng.random((T, *images.shape)) < images).astype(np.float32)


def main(out: str = "runs/snntorch_digits") -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = load_dataset("digits")  # pixels in [0, 1]
    x_train, y_train = data.x_train.reshape(len(data.x_train), -1), torch.tensor(data.y_train, dtype=torch.int64)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(x_train)).split(128):
            x = torch.from_numpy(spikes(x_train[idx.numpy()], rng))
            loss = torch.nn.functional.cross_entropy(net.counts(x), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    x_test = spikes(data.x_test.reshape(len(data.x_test), -1), rng)
    with torch.no_grad():
        acc = (net.counts(torch.from_numpy(x_test)).argmax(1).numpy() == data.y_test).mean()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    snn_utils.reset(net)
    nir.write(str(folder / "graph.nir"), export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0]))
    np.save(folder / "inputs.npy", np.ascontiguousarray(x_test.transpose(1, 0, 2)))  # [N, T, 64]
    np.save(folder / "labels.npy", np.asarray(data.y_test, np.int64))
    print(f"snnTorch accuracy {acc:.2%} on {x_test.shape[1]} test samples; wrote {folder}/graph.nir, inputs.npy, labels.npy")


if __name__ == "__main__":
    main(*sys.argv[1:])
