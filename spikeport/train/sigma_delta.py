"""Sigma-delta networks (SDNN, Loihi 2): ReLU layers whose outputs are sent as thresholded changes, trained in
float or quantization-aware, with their exact Loihi-integer forward and the deployable :class:`LoihiNet`.

The network (``TrainConfig.neuron = "sigma-delta"``): a ``delta`` input population fed the frames (pixels
0..255), hidden ``sigma_delta`` layers (conv or dense, each optionally after an average pool), and a ``sigma``
output whose value at the last step gives the class (readout ``last_value``). lava-dl's slayer trains the
same neurons (its sigma-delta neuron, delta axon and sigma dendrite, read to learn the formulation; nothing
is taken from it); this module trains them on a current torch.

Float forward of one hidden layer over all T steps, fed r_{l-1} [T, B, N_in] (what the layer before has
sent so far)::

    z[t] = w * pool(r_{l-1}[t]) + b,      a[t] = relu(z[t])
    d[t] = a[t] - a[t-1] + e[t-1];  s[t] = d[t] if |d[t]| >= theta else 0;  e[t] = d[t] - s[t]
    r_l[t] = r_l[t-1] + s[t]              (QAT: + floor(s[t] / u) * u, the payload Loihi sends)

A synapse is linear, so the sum of what it delivered is w * r: the float model convolves r itself. Backward:
straight through the send decision (dr/da = 1). The output layer's z (no bias: Lava's Sigma takes none) are
the logits at every step; the loss is their cross-entropy averaged over the steps, plus ``sd_message_penalty``
times the size of every hidden layer's changes, sum_t |a[t] - a[t-1]| / (T a_max) (a[-1] = 0: the first
message counts). The threshold of layer l is ``sd_threshold`` times a_max, its calibrated activation range.

Quantization (QAT: weights, biases and thresholds on their integer grids, payloads floored; backward straight
through) and the integer units are :mod:`spikeport.core.sd_quant`; the integer forward runs
:func:`spikeport.core.sigma_delta.step`, Lava's ``lava.proc.sdn`` arithmetic, on synaptic sums computed
here as Lava's Conv (24-bit wrap) and Dense (int32) deliver them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikeport.core import loihi, sd_quant
from spikeport.core import sigma_delta as sd
from spikeport.core.linear import Pool2d
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.core.sigma_delta import SigmaDeltaParams

CALIBRATION_MOMENTUM = 0.05  # EMA of the batch maxima of |z| and a (training mode)
READOUT = "last_value"  # class = argmax of the output's value at the last step (core.readout)


@dataclass(frozen=True)
class SDGeometry:
    """The input map of one layer: an average pool of ``pool`` (window = stride; 1: none) on the input
    (C, H, W), then a conv (``conv``: ``channels`` outputs, ``kernel`` square, padding kernel // 2) or a dense
    map to ``channels`` neurons. ``in_shape`` (C, H, W), or (n,) for a flat input."""

    in_shape: tuple[int, ...]
    channels: int
    conv: bool = False
    pool: int = 1
    kernel: int = 3

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        if self.pool == 1:
            return self.in_shape
        c, h, w = self.in_shape
        return c, h // self.pool, w // self.pool

    @property
    def out_shape(self) -> tuple[int, ...]:
        if not self.conv:
            return (self.channels,)
        _, h, w = self.pooled_shape  # padding kernel // 2, stride 1: an odd kernel keeps the size
        pad = self.kernel // 2
        return self.channels, h + 2 * pad - self.kernel + 1, w + 2 * pad - self.kernel + 1

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))


def _ema(buf: torch.Tensor, value: torch.Tensor) -> None:
    val = value.detach().double()
    buf.copy_(val if float(buf) == 0.0 else (1 - CALIBRATION_MOMENTUM) * buf + CALIBRATION_MOMENTUM * val)


def _ste(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` forward, the gradient of ``x`` backward."""
    return x + (target - x).detach()


def _hold_loop(a, theta, unit, out):  # pragma: no cover (compiled by numba; the same loop in Python without it)
    """a [T, M] -> out [T, M]: the held sums of :func:`hold`; returns the nonzero messages."""
    steps, m = a.shape
    sent = 0
    for i in range(m):
        prev = res = total = a.dtype.type(0)
        for t in range(steps):
            d = a[t, i] - prev + res
            s = d if abs(d) >= theta else d * 0
            p = np.floor(s / unit) * unit if unit > 0 else s
            res, prev, total = d - s, a[t, i], total + p
            out[t, i] = total
            sent += p != 0
    return sent


try:  # one pass over every neuron's T steps: torch's per-step ops each wait for a parallel region on a loaded CPU
    from numba import njit

    _hold_kernel = njit(cache=True, nogil=True)(_hold_loop)
except ImportError:  # numba is a declared dependency
    _hold_kernel = _hold_loop


def hold(a: torch.Tensor, theta: float, unit: float | None = None, count: bool = False) -> tuple[torch.Tensor, int]:
    """What a delta encoder with threshold ``theta`` has sent of a [T, B, N] by each step (module docstring),
    with payloads floored to ``unit`` when given; and the number of nonzero messages (``count``; else 0).
    Straight through: the gradient of a."""
    ad = a.detach().cpu().contiguous()
    flat = ad.reshape(ad.shape[0], -1).numpy()
    out = np.empty_like(flat)
    sent = _hold_kernel(flat, flat.dtype.type(theta), flat.dtype.type(unit or 0.0), out)
    held = torch.from_numpy(out).reshape(ad.shape).to(a.device)
    return _ste(a, held), int(sent) if count else 0


class SDLayer(nn.Module):
    """One sigma-delta population and its input connection (``geom``); ``sigma``: the output (no bias, no
    ReLU, no delta). Buffers ``z_max`` / ``a_max``: calibrated largest |sum| and activation (float units)."""

    def __init__(self, geom: SDGeometry, bias: bool, sigma: bool = False):
        super().__init__()
        self.geom, self.sigma = geom, sigma
        c_in = geom.pooled_shape[0] if geom.conv else int(np.prod(geom.pooled_shape))
        shape = (geom.channels, c_in, geom.kernel, geom.kernel) if geom.conv else (geom.channels, c_in)
        fan_in = int(np.prod(shape[1:]))
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-1, 1) * float(np.sqrt(6.0 / fan_in)))  # He (ReLU)
        self.bias = nn.Parameter(torch.zeros(geom.channels)) if bias and not sigma else None
        self.register_buffer("z_max", torch.zeros((), dtype=torch.float64))
        self.register_buffer("a_max", torch.zeros((), dtype=torch.float64))

    def _map(self, h: torch.Tensor, w: torch.Tensor, integer: bool) -> torch.Tensor:
        """h [M, N_in] -> [M, N_out]: the pool (integers: the window sum, as Loihi; float: the average), then
        the conv or dense map."""
        g = self.geom
        if g.pool > 1:
            h = h.reshape(h.shape[0], *g.in_shape)
            h = F.avg_pool2d(h, g.pool, divisor_override=1) if integer else F.avg_pool2d(h, g.pool)
        if g.conv:
            h = F.conv2d(h.reshape(h.shape[0], *g.pooled_shape), w, padding=g.kernel // 2)
        else:
            h = h.reshape(h.shape[0], -1) @ w.t()
        return h.reshape(h.shape[0], -1)

    def per_neuron(self, b: torch.Tensor) -> torch.Tensor:
        """A per-channel bias [C] as one value per neuron [N_out] (C-major)."""
        return b.repeat_interleave(self.geom.n_out // self.geom.channels) if self.geom.conv else b

    def forward(self, x: torch.Tensor, lq: sd_quant.SDLayerQuant | None, threshold: float, penalty: bool = False):
        """x [T, B, N_in] float -> (r [T, B, N_out], change penalty (0-dim; computed when ``penalty``), messages
        sent (counted outside training)); the sigma output returns its logits as r. ``lq``: QAT integers
        (None: float); ``threshold``: relative to a_max (float mode)."""
        w, b = self.weight, self.bias
        if lq is not None:
            w = _ste(w, torch.as_tensor(lq.weight, dtype=w.dtype) * lq.weight_scale)
            if b is not None:
                b = _ste(b, torch.as_tensor(lq.float_bias(), dtype=b.dtype))
        T, B = x.shape[:2]
        z = self._map(x.reshape(T * B, -1), w, integer=False).reshape(T, B, -1)
        if b is not None:
            z = z + self.per_neuron(b)
        if self.training:  # calibration: |z - b| <= |z| + |b|; a_max = max(z, 0)
            lo, hi = torch.aminmax(z.detach())
            _ema(self.z_max, torch.maximum(hi, -lo) + (0 if b is None else b.detach().abs().max()))
            if not self.sigma:
                _ema(self.a_max, hi.clamp(min=0))
        if self.sigma:
            return z, z.new_zeros(()), int(T * B * z.shape[2])
        a = F.relu(z)
        scale = max(float(self.a_max), 1e-12)
        theta = lq.float_threshold() if lq is not None else threshold * scale
        r, sent = hold(a, theta, lq.unit if lq is not None else None, count=not self.training)
        if not penalty:
            return r, z.new_zeros(()), sent
        prev = torch.cat([torch.zeros_like(a[:1]), a[:-1]])
        return r, (a - prev).abs().mean() / scale, sent

    @torch.no_grad()
    def synaptic_int(self, x: torch.Tensor, lq: sd_quant.SDLayerQuant) -> torch.Tensor:
        """Payloads x [T, B, N_in] int64 -> summed inputs [T, B, N_out] int64 as Lava delivers them: a Conv's
        24-bit wrap, a Dense's int32 sum (exact float64 products: |sums| < 2**53)."""
        T, B = x.shape[:2]
        q = torch.as_tensor(lq.weight, dtype=torch.float64)
        acc = torch.round(self._map(x.reshape(T * B, -1).to(torch.float64), q, integer=True)).to(torch.int64)
        acc = acc.reshape(T, B, -1)
        return loihi.wrap_conv_output(acc) if self.geom.conv else loihi.wrap_int32(acc)

    def connection(self, lq: sd_quant.SDLayerQuant, name: str) -> Connection:
        """The layer's input as a deployable connection (weight_exp 0; the sum pool before it)."""
        g = self.geom
        pool = Pool2d((g.pool, g.pool), (g.pool, g.pool)) if g.pool > 1 else None
        if g.conv:
            pad = g.kernel // 2
            return Connection(name, lq.weight, 0, kind="conv", in_shape=g.in_shape, pool=pool, padding=(pad, pad))
        return Connection(name, lq.weight.reshape(g.channels, -1), 0, in_shape=g.in_shape if pool or len(
            g.in_shape) == 3 else (), pool=pool)

    def params(self, lq: sd_quant.SDLayerQuant) -> SigmaDeltaParams:
        if self.sigma:
            return SigmaDeltaParams("sigma", spike_exp=sd_quant.TRAINED_SPIKE_EXP)
        bias = np.repeat(lq.bias, self.geom.n_out // self.geom.channels) if self.geom.conv else lq.bias
        return SigmaDeltaParams("sigma_delta", vth=int(lq.vth), bias=bias.astype(np.int64),
                                spike_exp=sd_quant.TRAINED_SPIKE_EXP)


@dataclass
class SDOutput:
    """A float / QAT forward: ``logits`` [T, B, classes], ``penalty`` (0-dim, the change size of the hidden
    layers), ``sent`` messages per population (input first)."""

    logits: torch.Tensor
    penalty: torch.Tensor
    sent: list[int]


class SigmaDeltaNet(nn.Module):
    """Delta input -> ``layers`` (sigma_delta ..., sigma). ``threshold``: hidden thresholds as a fraction of
    each layer's a_max; ``input_vth``: the input population's threshold (pixel levels); ``levels``: the
    integer of a full-scale pixel."""

    def __init__(self, layers: list[SDLayer], input_shape: tuple[int, ...], threshold: float, input_vth: int,
                 levels: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.input_shape, self.threshold = tuple(input_shape), float(threshold)
        self.input_vth, self.levels = int(input_vth), int(levels)
        self.penalty = False  # compute the change penalty (the training loop sets it when the loss uses it)
        self.dropout = 0.0  # dropout on the input of dense layers while training (set by the training loop)
        self.message_bits = sd_quant.TRAINED_MESSAGE_BITS  # payloads kept inside this signed width

    def quant(self) -> list[sd_quant.SDLayerQuant]:
        """Every layer's integers, through the unit chain from the input (core.sd_quant; the weight bits split
        evenly between layers where the ranges allow: ``choose_scales``)."""
        u0 = sd_quant.input_unit(self.levels)
        ws = [layer.weight.detach().double().numpy() for layer in self.layers]
        scales = sd_quant.choose_scales([float(np.abs(w).max(initial=0.0)) for w in ws],
                                        [float(layer.z_max) for layer in self.layers],
                                        [layer.geom.pool for layer in self.layers],
                                        [layer.geom.conv for layer in self.layers],
                                        [layer.sigma for layer in self.layers], u0, self.message_bits)
        out, unit = [], u0
        for layer, w, scale in zip(self.layers, ws, scales):
            b = None if layer.bias is None else layer.bias.detach().double().numpy()
            lq = sd_quant.quantize_layer(w, b, threshold=self.threshold * float(layer.a_max),
                                         in_unit=unit / layer.geom.pool ** 2, z_max=float(layer.z_max),
                                         conv=layer.geom.conv, sigma=layer.sigma, message_bits=self.message_bits,
                                         scale=scale)
            out.append(lq)
            unit = lq.unit
        return out

    def forward(self, x: torch.Tensor, qat: bool = False) -> SDOutput:
        """x [T, B, ...] frames in [0, 1] -> :class:`SDOutput` (messages counted in eval mode only)."""
        T, B = x.shape[:2]
        pixels = torch.round(x.reshape(T, B, -1) * self.levels)  # integers, as the input population gets them
        r, sent0 = hold(pixels, float(self.input_vth), count=not self.training)
        r = r / self.levels
        lqs = self.quant() if qat else [None] * len(self.layers)
        penalty, sent = x.new_zeros(()), [sent0]
        for layer, lq in zip(self.layers, lqs):
            if self.dropout and self.training and not layer.geom.conv:
                r = F.dropout(r, self.dropout)
            r, pen, n = layer(r, lq, self.threshold, self.penalty)
            penalty, sent = penalty + pen, sent + [n]
        return SDOutput(r, penalty, sent)

    @torch.no_grad()
    def forward_int(self, x_int: torch.Tensor) -> list[torch.Tensor]:
        """x_int [T, B, ...] integer frames -> every population's payloads [T, B, N] int64 (the input's first,
        the sigma output's values last), exactly as Lava's sdn processes compute them when a sample runs
        alone from a zeroed network (:meth:`warm_states`)."""
        T, B = x_int.shape[:2]
        lqs = self.quant()
        params = [self.input_params()] + [layer.params(lq) for layer, lq in zip(self.layers, lqs)]
        biases = [torch.as_tensor(np.asarray(p.effective_bias()), dtype=torch.int64) for p in params]
        warm = self.warm_states(lqs, params, biases)
        outs = [self._run(x_int.reshape(T, B, -1).to(torch.int64), params[0], biases[0], warm[0])]
        for i, (layer, lq) in enumerate(zip(self.layers, lqs), start=1):
            outs.append(self._run(layer.synaptic_int(outs[-1], lq), params[i], biases[i], warm[i]))
        return outs

    def warm_states(self, lqs, params, biases) -> list[tuple]:
        """Each population's (sigma, act, residue) [1, N] when the sample's first frame reaches it. A sample
        runs from a zeroed network whose blocks all start together (netx on Lava), so population i (after i
        connections, each one step) runs i steps first: its bias drives it, and it receives the messages the
        populations before it sent in their own first steps. None of that depends on the sample."""
        states, early = [self._zeros(int(np.prod(self.input_shape)))], [[]]  # early[i]: population i's payloads before its frames
        for i, (layer, lq) in enumerate(zip(self.layers, lqs), start=1):
            state, sent = self._zeros(layer.geom.n_out), []
            for step in range(i):
                a_in = torch.zeros(1, layer.geom.n_out, dtype=torch.int64) if step == 0 else \
                    layer.synaptic_int(early[i - 1][step - 1][None], lq)[0]
                payload, state = sd.step(a_in, state, params[i], biases[i])
                sent.append(payload)
            states.append(state)
            early.append(sent)
        return states

    @staticmethod
    def _zeros(n: int) -> tuple:
        return tuple(torch.zeros(1, n, dtype=torch.int64) for _ in range(3))

    def input_params(self) -> SigmaDeltaParams:
        return SigmaDeltaParams("delta", vth=self.input_vth, spike_exp=sd_quant.TRAINED_SPIKE_EXP)

    @staticmethod
    def _run(a_in: torch.Tensor, params: SigmaDeltaParams, bias, start: tuple) -> torch.Tensor:
        """Payloads [T, B, N] for summed inputs a_in [T, B, N] from the state ``start`` ([1, N] each)."""
        state = tuple(s.expand_as(a_in[0]).clone() for s in start)
        out = torch.empty_like(a_in)
        for t in range(a_in.shape[0]):
            out[t], state = sd.step(a_in[t], state, params, bias)
        return out

    def loihi_net(self, time_steps: int, meta: dict | None = None) -> LoihiNet:
        """The deployable network: the integers of :meth:`quant` as sigma-delta populations."""
        shape = self.input_shape
        pops = [Population("in", int(np.prod(shape)), None, None, shape=shape if len(shape) == 3 else (),
                           sd=self.input_params(), encoder="a_in",
                           message_bits=sd.MESSAGE_BITS)]
        for i, (layer, lq) in enumerate(zip(self.layers, self.quant())):
            out = layer.geom.out_shape
            pops.append(Population(f"{'sigma' if layer.sigma else 'sd'}{i + 1}", layer.geom.n_out, None,
                                   layer.connection(lq, f"{'conv' if layer.geom.conv else 'fc'}{i + 1}"),
                                   shape=out if len(out) == 3 else (), sd=layer.params(lq),
                                   message_bits=sd.MESSAGE_BITS))
        return LoihiNet(shape, pops, int(time_steps), graded_input=True, meta=dict(meta or {}))


def build(cfg, input_shape: tuple[int, ...], n_classes: int, levels: int) -> SigmaDeltaNet:
    """The network ``cfg`` describes: arch ``conv`` (a conv per ``cfg.channels``, each after the first behind
    an average pool of ``cfg.pool``; then a pool, flatten and the dense layers) or ``fc`` (dense ``cfg.hidden``),
    then the sigma output of ``n_classes``."""
    shape, layers = tuple(int(s) for s in input_shape), []
    if cfg.arch == "conv":
        for i, c in enumerate(cfg.channels):
            geom = SDGeometry(shape, int(c), conv=True, pool=1 if i == 0 else cfg.pool, kernel=int(cfg.kernel))
            layers.append(SDLayer(geom, cfg.bias))
            shape = geom.out_shape
    pool = cfg.pool if cfg.arch == "conv" else 1
    for n in list(cfg.hidden):
        layers.append(SDLayer(SDGeometry(shape, int(n), pool=pool), cfg.bias))
        shape, pool = (int(n),), 1
    layers.append(SDLayer(SDGeometry(shape, int(n_classes), pool=pool), False, sigma=True))
    return SigmaDeltaNet(layers, input_shape, cfg.sd_threshold, sd_quant.input_vth(cfg.sd_input_threshold, levels),
                         levels)
