"""``spikeseq`` (after Wang et al., STBP with spike-sequence labels): every class is a target spike
*sequence*; the loss is the distance between output trains and the label's target trains, and the
prediction is the class whose target is nearest (the same distance).

Targets [C, T, N] (C classes, N = C output neurons), 0-based steps::

    target[c, t, n] = 1  if n == c and t >= onset and (t - onset) % period == 0,   else 0

i.e. the label's own neuron fires a regular train (every ``seq_period`` steps from ``seq_onset``)
and the others stay silent. These trains are pairwise distinct, need no more than one spike per
step, and do not ask for any timing the first step cannot deliver (layers have no lag within a
sample). Trace filter, per step, alpha = ``seq_filter`` (default 1/2: dyadic, so the readout's
float64 distances are exact)::

    f[t] = alpha f[t-1] + s[t],   f[-1] = 0
    loss = mean_{b,t,n} (f_out[t,b,n] - f_target(y_b)[t,n])^2 + lambda R
    R    = mean over hidden neurons i of (max(r_min - r_i, 0) / r_min)^2,   r_i = mean_{t,b} s_i[t,b]

R (weight lambda = ``seq_rate_weight``, floor r_min = ``seq_min_rate`` spikes/step) keeps hidden
neurons from going silent, the known failure of sequence losses: a silent layer passes no
gradient. Prediction: argmin_c sum_{t,n} (f_out - f_c)^2, ties to the lowest index
(:func:`spikeport.core.readout.predict` with readout ``spike_sequence``; the targets and alpha
travel in the NIR graph's metadata).
"""
from __future__ import annotations

import numpy as np
import torch

from spikeport.train.methods.base import Method


def target_trains(n_classes: int, time_steps: int, period: int, onset: int) -> np.ndarray:
    """bool [C, T, C]: class c's target trains of the C output neurons over T steps."""
    tg = np.zeros((n_classes, time_steps, n_classes), dtype=bool)
    steps = np.arange(onset, time_steps, period)
    for c in range(n_classes):
        tg[c, steps, c] = True
    return tg


def trace(s: torch.Tensor, alpha: float) -> torch.Tensor:
    """f[t] = alpha f[t-1] + s[t] along axis 0 of s [T, ...] (differentiable)."""
    acc, out = torch.zeros_like(s[0]), []
    for t in range(s.shape[0]):
        acc = alpha * acc + s[t]
        out.append(acc)
    return torch.stack(out)


def rate_penalty(hidden: list[torch.Tensor], min_rate: float) -> torch.Tensor:
    """mean over hidden neurons of (relu(r_min - r) / r_min)^2, r = rate per neuron over [T, B]."""
    if not hidden or min_rate <= 0:
        return torch.zeros((), device=hidden[0].device if hidden else None)
    deficit = torch.cat([torch.relu(min_rate - s.mean((0, 1))) for s in hidden]) / min_rate
    return (deficit ** 2).mean()


class SpikeSeq(Method):
    name = "spikeseq"

    def targets(self, cfg, n_classes: int) -> np.ndarray:
        return target_trains(n_classes, cfg.time_steps, cfg.seq_period, cfg.seq_onset)

    def loss(self, outs: list[torch.Tensor], y: torch.Tensor, cfg) -> torch.Tensor:
        out = outs[-1]
        tg = torch.as_tensor(self.targets(cfg, out.shape[2]), dtype=out.dtype, device=out.device)[y]  # [B, T, N]
        f_out, f_tg = trace(out, cfg.seq_filter), trace(tg.transpose(0, 1), cfg.seq_filter)
        mse = ((f_out - f_tg) ** 2).mean()
        return mse + cfg.seq_rate_weight * rate_penalty(outs[:-1], cfg.seq_min_rate)

    def readout_meta(self, cfg, n_classes: int) -> dict:
        return {"readout": "spike_sequence", "readout_targets": self.targets(cfg, n_classes),
                "readout_filter": float(cfg.seq_filter)}
