"""netx files made by lava-dl itself: small slayer networks (random weights, called once so every block
learns its shape), exported with slayer's own ``export_hdf5``. Each covers blocks and neurons netx builds:

* :func:`cuba_encoder_cnn`: a CUBA ``Input`` encoder (driven by its bias: the image), strided, grouped,
  padded and dilated ``Conv``, ``Flatten``, ``Dense`` (a spiking classifier);
* :func:`sdnn_pilotnet`: PilotNet's shape with sigma-delta neurons: ``sigma_delta.Input`` (Delta), strided
  ``Conv`` blocks, ``Flatten``, ``Dense``, ``Output`` (a Sigma regression output);
* :func:`cuba_delays_recurrent`: ``Dense`` with graded spikes (``messageBits`` added to the file, as
  slayer writes only ``gradedSpike``), a ``Recurrent`` block with axonal delays, a ``Dense`` with delays,
  and an ``Affine`` block without dynamics (netx's default non-leaky integrator: a regression output).
"""
from __future__ import annotations

import h5py
import numpy as np

CUBA = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.1, "tau_grad": 0.1, "scale_grad": 1.0,
        "requires_grad": False}


def _export(blocks, path) -> None:
    with h5py.File(path, "w") as fh:
        layer = fh.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))


def cuba_encoder_cnn(path, seed: int = 0) -> tuple[int, ...]:
    """Input(bias) 2x10x12 -> Conv 4x5x6 (stride 2, groups 2) -> Conv 6x5x6 -> Flatten -> Dense 8; returns the
    input shape (C, H, W)."""
    import torch
    from lava.lib.dl import slayer

    torch.manual_seed(seed)
    cuba = slayer.block.cuba
    blocks = [cuba.Input(dict(CUBA), weight=2.0, bias=0.5),
              cuba.Conv(dict(CUBA), 2, 4, 3, stride=2, padding=1, groups=2, weight_scale=4, weight_norm=False),
              cuba.Conv(dict(CUBA), 4, 6, (3, 2), padding=(1, 0), dilation=(1, 2), weight_scale=4,
                        weight_norm=False),
              cuba.Flatten(),
              cuba.Dense(dict(CUBA), 6 * 5 * 4, 8, weight_scale=4, weight_norm=False)]
    shape = (2, 10, 12)
    torch.nn.Sequential(*blocks)(torch.rand(2, *shape, 4))
    _export(blocks, path)
    return shape


def sdnn(path, shape: tuple[int, ...], convs: list[tuple], dense: list[int], seed: int = 0) -> tuple[int, ...]:
    """A sigma-delta network: Input (Delta) ``shape`` -> a Conv block per ``convs`` entry (out channels,
    kernel, stride, padding) -> Flatten -> a Dense block per ``dense`` width -> the last width as an
    ``Output`` (Sigma). Returns ``shape`` (C, H, W)."""
    import torch
    from lava.lib.dl import slayer

    torch.manual_seed(seed)
    sd = {"threshold": 0.1, "tau_grad": 0.5, "scale_grad": 1.0, "requires_grad": False, "shared_param": True,
          "activation": torch.nn.functional.relu}
    sdb = slayer.block.sigma_delta
    blocks, c = [sdb.Input(dict(sd))], shape[0]
    for out, kernel, stride, padding in convs:
        blocks.append(sdb.Conv(dict(sd), c, out, kernel, stride=stride, padding=padding, weight_scale=2,
                               weight_norm=False))
        c = out
    blocks.append(sdb.Flatten())
    net = torch.nn.Sequential(*blocks)
    n = int(np.prod(net(torch.rand(1, *shape, 2)).shape[1:-1]))  # the flattened size
    for width in dense[:-1]:
        blocks.append(sdb.Dense(dict(sd), n, width, weight_scale=2, weight_norm=False))
        n = width
    blocks.append(sdb.Output(dict(sd), n, dense[-1], weight_scale=2))
    torch.nn.Sequential(*blocks)(torch.rand(2, *shape, 4))
    _export(blocks, path)
    return shape


def sdnn_pilotnet(path, seed: int = 0) -> tuple[int, ...]:
    """sigma_delta Input 3x15x24 -> Conv 8x7x11 (stride 2) -> Conv 12x3x5 (stride 2) -> Flatten -> Dense 16 ->
    Output 2 (Sigma); returns the input shape (C, H, W)."""
    return sdnn(path, (3, 15, 24), [(8, 3, 2, 0), (12, 3, 2, 0)], [16, 2], seed)


def cuba_delays_recurrent(path, seed: int = 0, message_bits: int = 4) -> tuple[int, ...]:
    """Dense 24 -> 12 (graded spikes) -> Recurrent 12 (delays 0..3) -> Dense 8 (delays 0..5) -> Affine 3 without
    dynamics; returns the input shape (n,)."""
    import torch
    from lava.lib.dl import slayer

    torch.manual_seed(seed)
    cuba = slayer.block.cuba
    graded = dict(CUBA, graded_spike=True)
    blocks = [cuba.Dense(graded, 24, 12, weight_scale=3, weight_norm=False),
              cuba.Recurrent(dict(CUBA), 12, 12, weight_scale=3, weight_norm=False, delay=True),
              cuba.Dense(dict(CUBA), 12, 8, weight_scale=3, weight_norm=False, delay=True),
              cuba.Affine(dict(CUBA), 8, 3, weight_scale=3, weight_norm=False, dynamics=False)]
    torch.nn.Sequential(*blocks)((torch.rand(2, 24, 6) < 0.3).float())  # the delays take their shape here
    gen = torch.Generator().manual_seed(seed)
    for block, top in ((blocks[1], 4), (blocks[2], 6)):
        block.delay.delay.data = torch.randint(0, top, block.delay.delay.shape, generator=gen).float()
    _export(blocks, path)
    with h5py.File(path, "a") as fh:
        fh["layer/0/neuron"].create_dataset("messageBits", data=message_bits)
    return (24,)


def frames(shape: tuple[int, ...], n: int, lo: int, hi: int, seed: int = 0) -> np.ndarray:
    """n integer frames [n, *shape] in [lo, hi)."""
    return np.random.default_rng(seed).integers(lo, hi, (n, *shape))


def moving(shape: tuple[int, ...], n: int, steps: int, seed: int = 0) -> np.ndarray:
    """n slowly changing frame sequences [n, steps, C, H, W] (0..255): an image that shifts by at most one
    pixel per step, as video does."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, *shape))
    out = np.empty((n, steps, *shape), np.int64)
    dy = dx = 0
    for t in range(steps):
        out[:, t] = np.roll(base, (dy, dx), axis=(-2, -1))
        dy, dx = dy + int(rng.integers(-1, 2)), dx + int(rng.integers(-1, 2))
    return out
