"""Convolutional, pooled and recurrent CUBA-LIF layers, and the networks ``arch="conv"`` / ``"rfc"``.

Every layer here is a :class:`~spikeport.train.model.LIFDense` (or a training method's subclass of
it) with a different input map; the LIF dynamics, the QAT fake quantization and the integer forward
through ``core.loihi.lif_step`` are LIFDense's. Activations stay flat, ``[T, B, N]`` with N in torch's
C-major order (``c*H*W + y*W + x``), exactly as the deployed populations are numbered.

Input map of one layer (its ``Geometry``), the same one ``spikeport.core.net.Connection`` runs::

    x [T, B, C*H*W] -> sum pool (window = stride = ``pool``; 1 = none)
                    -> conv2d(weight [C_out, C, kh, kw], stride, padding)   (``conv=True``)
                       or flatten + dense (weight [N_out, C*Hp*Wp])          (``conv=False``)

Pooling design: a sum pool of spikes is not a neuron, and Lava needs a neuron population between
two connections. spikeport keeps the pool in the *next* connection: deployed, a tiling pool folds
exactly into the following Conv's kernel (kernel x pool, stride x pool, repeated int8 weights) or
into the following Dense's columns; no extra population, no extra step of lag, no rounding (see
``deploy.linear``). Pooled values are integer spike counts, so the next layer's input unit is 1.
AvgPool is the same sum with 1/k^2 folded into that layer's input unit (``Geometry.avg``).

Recurrent layers (``RecurrentMixin``) add ``W_rec s[t-1]`` to the input of step t; their int8 weights
share the population's state scale (``core.quant.quantize_feedback``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikeport.core import loihi, neuron, quant
from spikeport.train.model import LayerSpec, LIFDense, SpikingMLP


@dataclass(frozen=True)
class Geometry:
    """The input map of one layer. ``in_shape`` (C, H, W) of the layer's input before pooling."""

    in_shape: tuple[int, int, int]
    pool: int = 1
    conv: bool = False
    out_channels: int = 0
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    avg: bool = False  # AvgPool: the pooled sum stands for sum / pool**2 (folded into the input unit)

    @property
    def pooled_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return c, h // self.pool, w // self.pool

    @property
    def pool_tiles(self) -> bool:
        _, h, w = self.in_shape
        return self.pool == 1 or (h % self.pool == 0 and w % self.pool == 0)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """(C_out, Ho, Wo) of a conv layer."""
        _, h, w = self.pooled_shape
        ho = (h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        return self.out_channels, ho, wo


def _sum_pool(x: torch.Tensor, geom: Geometry) -> torch.Tensor:
    """x [M, C*H*W] -> [M, C, Hp, Wp] window sums (exact for integers in float64 / int64, and for the
    0/1 spikes that every pooled layer receives in any float type). Floats take ``avg_pool2d`` with
    divisor 1 (the strided reduction over a reshaped view took 30 % of a conv training step; with
    this the step is 1.75x cheaper); integer tensors keep the reduction (``avg_pool2d`` has no int64
    kernel). Rows and columns past the last whole window are dropped by both."""
    m = x.shape[0]
    img = x.reshape(m, *geom.in_shape)
    if geom.pool == 1:
        return img
    c, hp, wp = geom.pooled_shape
    k = geom.pool
    if img.is_floating_point():
        return F.avg_pool2d(img, k, stride=k, divisor_override=1)
    return img[:, :, : hp * k, : wp * k].reshape(m, c, hp, k, wp, k).sum(dim=(3, 5))


class SpatialMixin:
    """Turns a LIFDense (or a method's subclass) into a layer with a ``Geometry`` input map."""

    def __init__(self, spec: LayerSpec, input_unit: float = 1.0, surrogate_slope: float = 10.0, *,
                 geom: Geometry, **kwargs):
        self.geom = geom  # before the base layer's __init__, which may size per-channel parameters by it
        super().__init__(spec, input_unit, surrogate_slope, **kwargs)
        if geom.conv:
            c_in = geom.in_shape[0]
            self.weight = nn.Parameter(torch.empty(geom.out_channels, c_in, *geom.kernel))
            bound = 2.0 / np.sqrt(c_in * geom.kernel[0] * geom.kernel[1])
            nn.init.uniform_(self.weight, -bound, bound)
            if spec.bias:
                self.bias = nn.Parameter(torch.zeros(geom.out_channels))
        if geom.pool > 1 and not geom.avg:  # a pooled sum is up to pool**2 spikes: start with smaller weights
            with torch.no_grad():
                self.weight /= geom.pool

    def max_input_int(self) -> int:
        """A pooled input is a sum of up to pool**2 spikes (or graded values)."""
        return super().max_input_int() * self.geom.pool ** 2

    def _positions(self) -> int:
        return int(np.prod(self.geom.out_shape[1:])) if self.geom.conv else 1

    def float_params(self, x=None):
        """Per-channel conv bias expanded to one value per neuron [N]."""
        w, b = super().float_params(x)
        if b is not None and self.geom.conv:
            b = b.repeat_interleave(self._positions())
        return w, b

    def quantize(self, w: torch.Tensor, bias):
        """LIFDense's quantization on the weight seen as [C_out, fan_in]; conv weights keep their shape."""
        n = self.spec.n_out
        lq = super().quantize(w.reshape(w.shape[0], -1), bias if bias is not None else torch.zeros(n))
        return replace(lq, weight=lq.weight.reshape(tuple(w.shape)))

    def project(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        h = _sum_pool(x.reshape(T * B, -1), self.geom)
        if self.geom.avg:  # the float meaning of an AvgPool; the integers keep the sum (input unit 1/k^2)
            h = h / self.geom.pool ** 2
        h = F.conv2d(h, w, stride=self.geom.stride, padding=self.geom.padding) if self.geom.conv \
            else h.reshape(T * B, -1) @ w.t()
        return h.reshape(T, B, -1)

    def synaptic_input_int(self, x: torch.Tensor, lq: quant.LayerQuant) -> torch.Tensor:
        """As Lava delivers it: Conv's 24-bit wrap, or shift(., weight_exp) for Dense / Sparse."""
        T, B = x.shape[:2]
        q = torch.as_tensor(lq.masked_weight(), dtype=torch.float64)
        h = _sum_pool(x.reshape(T * B, -1).to(torch.int64), self.geom).to(torch.float64)
        if self.geom.conv:
            acc = F.conv2d(h, q, stride=self.geom.stride, padding=self.geom.padding)
            acc = torch.round(acc).to(torch.int64).reshape(T, B, -1)  # exact: integers < 2**53
            return loihi.conv_synaptic_input(acc, lq.weight_exp, self.geom.pool_tiles)
        acc = torch.round(h.reshape(T * B, -1) @ q.t()).to(torch.int64).reshape(T, B, -1)
        return loihi.shift_exp(acc, lq.weight_exp)


def fake_quant(w: torch.Tensor, scale: float, wide: bool = False) -> torch.Tensor:
    """int8 (``wide``: 16-bit, ``core.quant.weight_range``) rounding of w / scale, times scale, forward;
    identity backward (straight through)."""
    return w + (torch.clamp(torch.round(w / scale), *quant.weight_range(wide)) * scale - w).detach()


class RecurrentMixin:
    """Adds ``weight_rec`` [N, N]: the input of step t gains W_rec s[t-1] (Loihi: a recurrent Dense)."""

    def __init__(self, spec: LayerSpec, input_unit: float = 1.0, surrogate_slope: float = 10.0, **kwargs):
        super().__init__(spec, input_unit, surrogate_slope, **kwargs)
        self.weight_rec = nn.Parameter(torch.empty(spec.n_out, spec.n_out))
        nn.init.uniform_(self.weight_rec, -0.5 / np.sqrt(spec.n_out), 0.5 / np.sqrt(spec.n_out))

    def quant_recurrent(self, lq: quant.LayerQuant | None = None) -> tuple[np.ndarray, int, float]:
        """(int8 q_rec [N, N], weight_exp, weight_scale) on the layer's state scale."""
        lq = lq or self.quant()
        return quant.quantize_feedback(self.weight_rec.detach().cpu().double().numpy(), lq.state_scale,
                                       netx=self.netx)

    def forward(self, x: torch.Tensor, qat: bool = False) -> torch.Tensor:
        """x [T, B, n_in] float -> spikes [T, B, N] float; the same steps as LIFDense plus feedback."""
        w, bias = self.float_params(x)
        w_rec = self.weight_rec
        beta_syn, beta_mem, theta = self.spec.beta_syn, self.spec.beta_mem, self.spec.theta
        if qat:
            lq = self.quantize(w, bias)
            w = fake_quant(w, lq.weight_scale, lq.wide)
            w_rec = fake_quant(w_rec, self.quant_recurrent(lq)[2], lq.wide)
            beta_syn, beta_mem = quant.decay_from_du(lq.lif.du), quant.decay_from_dv(lq.lif.dv)
            theta = lq.float_threshold()
            if bias is not None:
                fb = torch.tensor(np.broadcast_to(lq.float_bias(), (self.spec.n_out,)), dtype=bias.dtype)
                bias = bias + (fb - bias).detach()
        cur = self.input_current(x, w)
        u = v = s = cur.new_zeros(cur.shape[1:])
        b = 0.0 if bias is None else bias
        spike = self.spike_function(theta, beta_syn, beta_mem)
        out = []
        for t in range(cur.shape[0]):
            cur_t = cur[t] + s @ w_rec.t()
            s, u, v = neuron.cuba_lif_step(cur_t, u, v, beta_syn=beta_syn, beta_mem=beta_mem, theta=theta, bias=b,
                                           spike_fn=lambda z: spike(z, cur_t, u), v_floor=self.v_floor)  # noqa: B023
            out.append(s)
        return torch.stack(out)

    @torch.no_grad()
    def forward_int(self, x: torch.Tensor, lq: quant.LayerQuant | None = None) -> torch.Tensor:
        """x [T, B, n_in] integer -> spikes [T, B, N] bool, as Loihi: the recurrent Dense delivers
        shift(q_rec @ s[t-1], exp_rec) at step t (one-step lag, cleared at each sample)."""
        lq = lq or self.quant()
        q_rec, exp_rec, _ = self.quant_recurrent(lq)
        q_rec = torch.as_tensor(q_rec, dtype=torch.float64)
        a_all = self.synaptic_input_int(x, lq)
        bias = torch.as_tensor(lq.lif.effective_bias(), dtype=torch.int64)
        u = v = torch.zeros(a_all.shape[1:], dtype=torch.int64)
        s = torch.zeros_like(u, dtype=torch.bool)
        out = torch.zeros(a_all.shape, dtype=torch.bool)
        for t in range(a_all.shape[0]):
            fb = torch.round(s.to(torch.float64) @ q_rec.t()).to(torch.int64)
            s, u, v = loihi.lif_step(u, v, a_all[t] + loihi.shift_exp(fb, exp_rec), lq.lif, bias)
            out[t] = s
        return out


def with_mixins(base: type[LIFDense], *mixins: type) -> type:
    """``base`` (LIFDense or a training method's layer class) extended by ``mixins``."""
    names = "".join(m.__name__.replace("Mixin", "") for m in mixins)
    return type(f"{base.__name__}{names}", (*mixins, base), {})


class SpikingNet(SpikingMLP):
    """A chain of spiking layers of any kind (flat activations); same interface as SpikingMLP:
    ``forward(x, qat)`` / ``forward_int(x)`` return the spikes of every layer, ``quant()`` their integers."""

    def __init__(self, layers: list[nn.Module], input_shape: tuple[int, ...]):
        nn.Module.__init__(self)
        self.layers = nn.ModuleList(layers)
        self.input_shape = tuple(input_shape)


def _spec(cfg, n_in: int, n_out: int) -> LayerSpec:
    return LayerSpec(n_in, n_out, beta_syn=cfg.beta_syn, beta_mem=cfg.beta_mem, theta=cfg.theta, bias=cfg.bias)


def build_conv(cfg, input_shape: tuple[int, int, int], n_classes: int, *, input_unit: float,
               layer_cls: type[LIFDense] = LIFDense, layer_kwargs: dict | None = None) -> SpikingNet:
    """conv(k, pad k//2) + LIF per entry of ``cfg.channels``, each after the first fed through a pool
    of ``cfg.pool`` (``cfg.pool_mode`` sum or avg); then a pool, flatten and the dense layers
    ``cfg.hidden`` + [n_classes]. ``input_shape`` (C, H, W); ``input_unit`` of the first layer."""
    kw = dict(layer_kwargs or {})
    spatial_cls = with_mixins(layer_cls, SpatialMixin)
    k, pad, avg = int(cfg.kernel), int(cfg.kernel) // 2, cfg.pool_mode == "avg"
    pooled_unit = 1.0 / cfg.pool**2 if avg else 1.0  # float value of one pooled spike count
    shape, layers, unit = tuple(int(s) for s in input_shape), [], input_unit
    for i, c_out in enumerate(cfg.channels):
        geom = Geometry(shape, pool=1 if i == 0 else cfg.pool, conv=True, out_channels=int(c_out), kernel=(k, k),
                        padding=(pad, pad), avg=avg and i > 0)
        n_in, out = int(np.prod(shape)), geom.out_shape
        layers.append(spatial_cls(_spec(cfg, n_in, int(np.prod(out))), unit, cfg.surrogate_slope, geom=geom, **kw))
        shape, unit = out, pooled_unit
    sizes = list(cfg.hidden) + [n_classes]
    geom = Geometry(shape, pool=cfg.pool, avg=avg)
    layers.append(spatial_cls(_spec(cfg, int(np.prod(geom.pooled_shape)), sizes[0]), unit, cfg.surrogate_slope,
                            geom=geom, **kw))
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(layer_cls(_spec(cfg, a, b), 1.0, cfg.surrogate_slope, **kw))
    return SpikingNet(layers, input_shape)


def build_rfc(cfg, n_in: int, n_classes: int, *, input_unit: float, layer_cls: type[LIFDense] = LIFDense,
              layer_kwargs: dict | None = None) -> SpikingNet:
    """Dense layers ``cfg.hidden`` with recurrent weights, then a dense output layer."""
    kw = dict(layer_kwargs or {})
    rec_cls = with_mixins(layer_cls, RecurrentMixin)
    sizes = [n_in] + list(cfg.hidden) + [n_classes]
    layers = [(rec_cls if i < len(sizes) - 2 else layer_cls)(_spec(cfg, a, b), input_unit if i == 0 else 1.0,
                                                              cfg.surrogate_slope, **kw)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return SpikingNet(layers, (n_in,))
