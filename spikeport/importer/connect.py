"""The connection nodes between two neuron layers of a peer graph, as one map the deploy side runs.

spikeport deploys, between two populations (see :mod:`spikeport.nirfmt.load`):
``[sum pool] [Flatten] (dense | conv)`` or a sum pool alone. :func:`parse` turns a chain of NIR nodes
into a :class:`ConnPlan` of that form, in float:

* SumPool2d first -> the sum pool; AvgPool2d first -> the sum pool with ``1/k^2`` in ``gain``;
* Flatten, inlined subgraph ports -> nothing (tensors stay C-major, as NIR and torch lay them out);
* one Conv2d (+ a Scale constant per channel) -> ``conv``; Affine / Linear / Scale -> one ``dense``
  matrix (their product); Conv2d / Affine biases -> ``const`` (a constant input per output neuron);
* anything else that is linear (a pool after weights, two convolutions, ...) is unrolled into an exact
  dense matrix when it has at most ``UNROLL_LIMIT`` entries; Delay nodes are dropped as approximations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spikeport.nirfmt.shapes import conv_padding, pair

UNROLL_LIMIT = 1 << 24
POOLS = ("SumPool2d", "AvgPool2d")


@dataclass
class ConnPlan:
    """``kind``: dense | conv | pool. ``weight``: dense [out, in] / conv [C_out, C_in/g, kh, kw] float64
    (None for pool). ``pool``: (kernel, stride, padding) of a leading sum pool; ``flatten``: a Flatten
    node lies between pool and dense; ``gain``: a scalar factor on the whole map (AvgPool's 1/k^2);
    ``const`` [out]: constant input per output neuron; shapes are per sample."""

    kind: str
    weight: np.ndarray | None
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    const: np.ndarray
    pool: tuple | None = None
    flatten: bool = False
    gain: float = 1.0
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    def scale_outputs(self, f: np.ndarray, err) -> float:
        """Multiply output neuron i's input by f[i] (float [out]). Dense: any f; conv: f constant per
        channel; pool: f uniform, returned as a scalar for the caller to divide the threshold by."""
        f = np.asarray(f, np.float64).reshape(-1)
        if self.kind == "dense":
            self.weight = f[:, None] * self.weight
            return 1.0
        per = f.reshape(self.out_shape[0], -1)
        if not np.allclose(per, per[:, :1], rtol=1e-12, atol=0):
            raise err("per-neuron gains or thresholds differ within a channel; Loihi shares a convolution "
                      "kernel (and a pool) across positions")
        if self.kind == "conv":
            self.weight = per[:, 0][:, None, None, None] * self.weight
            return 1.0
        if not np.allclose(f, f[0], rtol=1e-12, atol=0):
            raise err("per-neuron gains or thresholds differ behind a pooling layer; a pool has no weights")
        return float(f[0])


def _dense_ops(fg, names: list[str], n_in: int) -> tuple[np.ndarray, np.ndarray]:
    W, b = np.eye(n_in), np.zeros(n_in)
    for name in names:
        kind, node = fg.kinds[name], fg.nodes[name]
        if kind in ("Affine", "Linear"):
            w = np.asarray(node.weight, np.float64)
            W, b = w @ W, w @ b
            if kind == "Affine":
                b = b + np.broadcast_to(np.asarray(node.bias, np.float64).ravel(), b.shape)
        else:  # Scale
            s = np.broadcast_to(np.asarray(node.scale, np.float64).ravel(), b.shape)
            W, b = s[:, None] * W, s * b
    return W, b


def _apply(fg, name: str, x: torch.Tensor, err) -> torch.Tensor:
    """One linear node on a float64 batch x [M, *in_shape] (for unrolling)."""
    kind, node, shape = fg.kinds[name], fg.nodes[name], fg.shapes[name]
    t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    if kind in ("Identity", "Flatten", "Delay"):
        return x.reshape((x.shape[0],) + shape)
    if kind in ("Affine", "Linear"):
        return F.linear(x, t(node.weight), t(node.bias).reshape(-1).expand(shape[0]) if kind == "Affine" else None)
    if kind == "Scale":
        s = t(node.scale)
        return x * (s.reshape(shape) if s.numel() == int(np.prod(shape)) else s.reshape(()))
    if kind == "Conv2d":
        w = t(node.weight)
        return F.conv2d(x, w, t(node.bias).reshape(-1).expand(w.shape[0]), pair(node.stride, "stride", err),
                        conv_padding(node, err), pair(node.dilation, "dilation", err), int(np.asarray(node.groups)))
    if kind in POOLS:
        k, s, p = (pair(node.kernel_size, "kernel_size", err), pair(node.stride, "stride", err),
                   pair(node.padding, "padding", err))
        out = F.avg_pool2d(x, k, s, p, count_include_pad=True)
        return out if kind == "AvgPool2d" else out * (k[0] * k[1])
    raise err(f"node type {kind} cannot sit between two neuron layers on Loihi")


def _unroll(fg, names: list[str], src_shape: tuple[int, ...], in_shape: tuple[int, ...],
            out_shape: tuple[int, ...], err) -> ConnPlan:
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    if n_in * n_out > UNROLL_LIMIT:
        raise err(f"this chain of linear nodes is not one the deploy side runs ([pool] [Flatten] dense|conv), "
                  f"and unrolling it would need a {n_out}x{n_in} matrix")
    with torch.no_grad():
        basis = torch.cat([torch.zeros(1, n_in, dtype=torch.float64), torch.eye(n_in, dtype=torch.float64)])
        h = basis.reshape((n_in + 1,) + tuple(src_shape))
        for name in names:
            h = _apply(fg, name, h, err)
        h = h.reshape(n_in + 1, n_out).numpy()
    const = h[0].copy()
    return ConnPlan("dense", (h[1:] - const).T.copy(), in_shape, (n_out,), const, flatten=len(in_shape) > 1)


def parse(fg, names: list[str], src_shape: tuple[int, ...], in_shape: tuple[int, ...], approx) -> ConnPlan:
    """The chain ``names`` (connection nodes, in order) as a ConnPlan. ``src_shape``: the tensor the
    source graph feeds it; ``in_shape``: the same values as the deployed previous layer lays them out
    (flat when that layer was unrolled). ``approx(node, issue, change)`` records or refuses a change."""
    def err(why: str, node: str | None = None):
        return fg.err(node or (names[0] if names else "?"), why)

    ops = []
    for n in names:
        if fg.kinds[n] == "Delay":
            approx(n, "delays its input", "delay removed (0 steps)")
        elif fg.kinds[n] != "Identity":
            ops.append(n)
    out_shape = fg.shapes[names[-1]] if names else in_shape
    kinds = [fg.kinds[n] for n in ops]
    i, pool, gain = 0, None, 1.0
    shape = in_shape
    if kinds[:1] and kinds[0] in POOLS and len(shape) == 3:
        node = fg.nodes[ops[0]]
        e = lambda why, _n=ops[0]: err(why, _n)  # noqa: E731
        pool = (pair(node.kernel_size, "kernel_size", e), pair(node.stride, "stride", e), pair(node.padding, "padding", e))
        if kinds[0] == "AvgPool2d":
            gain = 1.0 / (pool[0][0] * pool[0][1])
        shape, i = fg.shapes[ops[0]], 1
    flat = False
    while i < len(kinds) and kinds[i] == "Flatten":
        shape, flat, i = fg.shapes[ops[i]], True, i + 1
    rest, rkinds = ops[i:], kinds[i:]
    if not rest and pool is not None:
        return ConnPlan("pool", None, in_shape, out_shape, np.zeros(int(np.prod(out_shape))), pool=pool, gain=gain)
    if rkinds and all(k in ("Affine", "Linear", "Scale") for k in rkinds) and len(shape) == 1:
        W, b = _dense_ops(fg, rest, shape[0])
        return ConnPlan("dense", gain * W, in_shape, (W.shape[0],), b, pool=pool, flatten=flat)
    if rkinds[:1] == ["Conv2d"] and all(k == "Scale" for k in rkinds[1:]) and len(shape) == 3 and not flat:
        node = fg.nodes[rest[0]]
        e = lambda why, _n=rest[0]: err(why, _n)  # noqa: E731
        w = gain * np.asarray(node.weight, np.float64)
        c_out = w.shape[0]
        const = np.repeat(np.broadcast_to(np.asarray(node.bias, np.float64).ravel(), (c_out,)),
                          int(np.prod(out_shape[1:])))
        plan = ConnPlan("conv", w, in_shape, out_shape, const, pool=pool, stride=pair(node.stride, "stride", e),
                        padding=conv_padding(node, e), dilation=pair(node.dilation, "dilation", e),
                        groups=int(np.asarray(node.groups)))
        for sname in rest[1:]:
            s = np.broadcast_to(np.asarray(fg.nodes[sname].scale, np.float64).ravel(), (plan.n_out,)).copy()
            plan.scale_outputs(s, lambda why, _n=sname: err(why, _n))
            plan.const = plan.const * s
        return plan
    return _unroll(fg, ops, src_shape, in_shape, out_shape, err)
