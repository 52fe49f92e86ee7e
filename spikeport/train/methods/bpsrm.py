"""``bpsrm`` (Wang et al., Neurocomputing 2023, BP-SRM): BPTT through an iterative spike response
model, with temporal channel normalization (TCN).

SRM = CUBA-LIF. The iterative SRM's double-exponential PSP kernel is exactly the current-based LIF:
unrolling u and v without reset gives v[t] = sum_{t' <= t} kappa[t - t'] (W x[t']) with

    kappa[n] = sum_{j=0..n} beta_mem^(n-j) beta_syn^j = (beta_mem^(n+1) - beta_syn^(n+1)) / (beta_mem - beta_syn),

a difference of two exponentials (time constants -1/ln beta_mem and -1/ln beta_syn steps), and the
reset to zero is the SRM's refractory response. So BP-SRM reuses spikeport's CUBA-LIF core unchanged
(``core.neuron.cuba_lif_step`` in training, ``core.loihi.lif_step`` deployed).

TCN (spikeport's definition). For layer input current c[t, b, n] = (W x[t, b])_n, per channel n,
over time and batch (training: this batch; evaluation/export: running averages with momentum
``tcn_momentum``; the first training batch sets them; ``tcn_stat_batch`` = N > 0 takes the batch
statistics from the first N samples of each shuffled batch, a cheaper estimate that still carries
the normalization's gradient: on a conv net the extra projection for the statistics is the cost)::

    mu_n = mean_{t,b} c,   var_n = mean_{t,b} (c - mu_n)^2,   g_n = gamma_n / sqrt(var_n + EPS)
    u[t] = beta_syn u[t-1] + g * c[t]                                  scale acts on the current
    v[t] = beta_mem v[t-1] + u[t] + beta_n - g_n mu_n / (1 - beta_syn)  shift acts on the voltage

gamma [N] (initially GAIN_INIT = 3 rheobases, 3 theta (1 - beta_syn)(1 - beta_mem), so a channel one
standard deviation above its mean fires at a moderate rate) and beta [N] (initially 0) are learned,
W as in ``lif``. The centring term is the steady-state effect of subtracting g mu from
the current every step (u settles at c / (1 - beta_syn)), applied as a voltage bias: Loihi adds its
bias to v, not to u, and a constant added to the current is a constant voltage bias only when
beta_syn = 0, where TCN is exactly batch normalization of the current. Folded for deployment::

    W' = diag(g) W          (int8, one scale per layer)
    b' = beta - g mu / (1 - beta_syn)   (per-neuron bias_mant, bias_exp)

so the exported net is plain integer CUBA-LIF; QAT fake-quantizes W' and b' (running statistics
in evaluation), so the QAT forward is the integer net up to Loihi's rounding of the state.

Convolutional layers (``arch="conv"``): a channel is a feature map, as in batch normalization of a
convolution: the statistics run over time, batch and the map's positions, gamma and beta are one per
feature map, W' scales each output channel's kernel and b' is one voltage bias per map (every neuron
of the map gets it), so the folded layer is still one integer Conv + CUBA-LIF population.
"""
from __future__ import annotations

import torch

from spikeport.train.methods.base import Method
from spikeport.train.model import LayerSpec, LIFDense, constant_over_time

EPS = 1e-5
GAIN_INIT = 3.0  # initial gamma in rheobases: g c = 3 * theta (1 - beta_syn)(1 - beta_mem) per unit of normalized c


class TCNDense(LIFDense):
    """CUBA-LIF layer whose input current is normalized per channel over time and batch (TCN); a conv
    layer (``train.layers.SpatialMixin`` with a conv ``geom``) normalizes per feature map."""

    def __init__(self, spec: LayerSpec, input_unit: float = 1.0, surrogate_slope: float = 10.0, momentum: float = 0.1,
                 stat_batch: int = 0):
        super().__init__(spec, input_unit, surrogate_slope)
        self.stat_batch = int(stat_batch)
        rheobase = spec.theta * (1.0 - spec.beta_syn) * (1.0 - spec.beta_mem)
        n = self.norm_channels()
        self.gamma = torch.nn.Parameter(torch.full((n,), GAIN_INIT * max(rheobase, 1e-3)))
        self.beta = torch.nn.Parameter(torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.int64))
        self.momentum = float(momentum)

    def norm_channels(self) -> int:
        """Normalized channels: the feature maps of a conv layer, else every neuron."""
        geom = getattr(self, "geom", None)  # set by SpatialMixin before this layer's __init__
        return int(geom.out_channels) if geom is not None and geom.conv else self.spec.n_out

    def float_params(self, x: torch.Tensor | None = None):
        """Folded (W', b' [channels]): batch statistics of x [T, B, in] in training, running ones otherwise.
        W' has the weight's shape ([out, in], or a conv kernel [C_out, C_in, kh, kw])."""
        n = self.norm_channels()
        if self.training and x is not None:
            x = x[:1] if constant_over_time(x) else x  # the same frame every step: one is enough
            if self.stat_batch:
                x = x[:, :self.stat_batch]
            c = self.project(x, self.weight).reshape(-1, n, self.spec.n_out // n)  # [T*B, channel, position]
            var, mean = torch.var_mean(c, dim=(0, 2), unbiased=False)
            with torch.no_grad():  # the first batch sets the running statistics, later ones move them
                m = 1.0 if int(self.batches_seen) == 0 else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach(), m)
                self.batches_seen += 1
        else:
            mean, var = self.running_mean, self.running_var
        g = self.gamma / torch.sqrt(var + EPS)
        w = self.weight * g.reshape(-1, *([1] * (self.weight.dim() - 1)))
        return w, self.beta - g * mean / (1.0 - self.spec.beta_syn)


class Bpsrm(Method):
    name = "bpsrm"
    layer_cls = TCNDense

    def layer_kwargs(self, cfg) -> dict:
        return {"momentum": float(cfg.tcn_momentum), "stat_batch": int(cfg.tcn_stat_batch)}
