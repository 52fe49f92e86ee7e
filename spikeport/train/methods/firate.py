"""``firate`` (after Lan & Chen 2022): the gradient of a spike is the derivative of the neuron's
firing rate with respect to its input current, taken from the f-I curve of the *discrete* CUBA-LIF
that spikeport deploys.

f-I curve. Constant input I per step (float units), u[-1] = v[-1] = 0, reset of v to zero, u never
reset. u settles at u_inf = I / (1 - beta_syn); from v = 0 the voltage after n steps is
v_n = u_inf (1 - beta_mem^n) / (1 - beta_mem), and the neuron spikes at the first n with v_n > theta.
With the drive j = u_inf / (theta (1 - beta_mem)) (j = 1 is the rheobase) and lambda = -ln beta_mem::

    v_n > theta  <=>  n > L(j) = ln(j / (j - 1)) / lambda                       (j > 1)
    r(I) = 1 / (floor(L) + 1)  spikes/step for j > 1,   0 otherwise              (a staircase)

(beta_mem = 1, no leak: j = u_inf / theta, L = 1 / j.) Smooth curve (soft-LIF: the discrete LIF is a
continuous LIF with tau_RC = 1/lambda steps and a one-step refractory period, with floor removed and
the rectification j - 1 -> rho = gamma softplus((j - 1) / gamma), gamma = ``firate_smooth``)::

    r_s(I) = 1 / (1 + ln(1 + 1/rho) / lambda),   0 <= r_s <= 1,   r_s -> 1/(1 + L) as gamma -> 0
    dr_s/dI = sigmoid((j-1)/gamma) / (rho (1 + rho) lambda (1 + L_s)^2) * dj/dI,
    dj/dI = 1 / ((1 - beta_syn)(1 - beta_mem) theta)

1/(1 + L) meets the staircase at every stair's left corner (L integer) and lies below it elsewhere.

Training: forward is the Heaviside of v - theta; backward sets ds[t]/dv[t] = dr_s/dI evaluated at
the constant input that would hold this step's current, I_eq = (1 - beta_syn) u[t] (detached; for
direct-encoded input of the first layer I_eq -> I). ``fi_curve`` returns the smooth curve, the
analytic staircase and the simulated one (``core.neuron.cuba_lif_step`` and ``core.loihi.lif_step``);
``examples/firate_curve.py`` plots them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spikeport.core import loihi, neuron, quant
from spikeport.train.methods.base import Method
from spikeport.train.model import LayerSpec, LIFDense

LOG_SOFTPLUS_TAIL = -30.0  # below this, ln softplus(x) = x to double precision


def _drive(current, beta_syn: float, beta_mem: float, theta: float):
    """j = I / ((1 - beta_syn)(1 - beta_mem) theta) (for beta_mem = 1: I / ((1 - beta_syn) theta)) and dj/dI."""
    leak = (1.0 - beta_mem) if beta_mem < 1.0 else 1.0
    return current / ((1.0 - beta_syn) * leak * theta), 1.0 / ((1.0 - beta_syn) * leak * theta)


def _log_softplus(x: torch.Tensor) -> torch.Tensor:
    """ln(ln(1 + e^x)) without underflow for very negative x."""
    return torch.where(x < LOG_SOFTPLUS_TAIL, x, torch.log(F.softplus(torch.clamp(x, min=LOG_SOFTPLUS_TAIL))))


def _leaky_terms(j: torch.Tensor, smooth: float, lam: float):
    """x = (j - 1)/gamma, rho = gamma softplus(x) and L_s = ln(1 + 1/rho) / lambda, computed in log space."""
    x = (j - 1.0) / smooth
    log_rho = np.log(smooth) + _log_softplus(x)
    rho = torch.exp(log_rho)
    return x, rho, (torch.log1p(rho) - log_rho) / lam


def smooth_rate(current: torch.Tensor, beta_syn: float, beta_mem: float, theta: float, smooth: float) -> torch.Tensor:
    """r_s(I) in spikes/step for a tensor of constant per-step inputs I (float units)."""
    j, _ = _drive(current, beta_syn, beta_mem, theta)
    if beta_mem >= 1.0:  # no leak: L = 1 / rho(j), r = rho / (1 + rho)
        rho = smooth * F.softplus(j / smooth)
        return rho / (1.0 + rho)
    _, _, big_l = _leaky_terms(j, smooth, -np.log(beta_mem))
    return 1.0 / (1.0 + big_l)


def smooth_rate_grad(current: torch.Tensor, beta_syn: float, beta_mem: float, theta: float,
                     smooth: float) -> torch.Tensor:
    """dr_s/dI (spikes/step per float input unit), analytic."""
    j, dj = _drive(current, beta_syn, beta_mem, theta)
    if beta_mem >= 1.0:
        x = j / smooth
        return torch.sigmoid(x) / (1.0 + smooth * F.softplus(x)) ** 2 * dj
    lam = -np.log(beta_mem)
    x, rho, big_l = _leaky_terms(j, smooth, lam)
    sig_over_sp = torch.exp(F.logsigmoid(x) - _log_softplus(x))  # sigmoid(x) / softplus(x), -> 1 as x -> -inf
    return sig_over_sp / (smooth * (1.0 + rho) * lam * (1.0 + big_l) ** 2) * dj


def staircase_rate(current: np.ndarray, beta_syn: float, beta_mem: float, theta: float) -> np.ndarray:
    """Analytic steady-state rate 1 / (floor(L) + 1) (0 at or below the rheobase), spikes/step."""
    j, _ = _drive(np.asarray(current, dtype=np.float64), beta_syn, beta_mem, theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        if beta_mem >= 1.0:
            big_l = np.where(j > 0, 1.0 / j, np.inf)
        else:
            big_l = np.where(j > 1, np.log(j / (j - 1.0)) / -np.log(beta_mem), np.inf)
        return np.where(np.isfinite(big_l), 1.0 / (np.floor(big_l) + 1.0), 0.0)


def _steady_rate(spikes: np.ndarray) -> np.ndarray:
    """1 / (last inter-spike interval) per column of spikes [steps, K]; 0 with fewer than two spikes."""
    rates = np.zeros(spikes.shape[1])
    for k in range(spikes.shape[1]):
        times = np.flatnonzero(spikes[:, k])
        if len(times) >= 2:
            rates[k] = 1.0 / (times[-1] - times[-2])
    return rates


def simulated_rate(current: np.ndarray, beta_syn: float, beta_mem: float, theta: float, steps: int = 2000,
                   integer: bool = False) -> np.ndarray:
    """Steady-state rate of the simulated neuron driven by constant input I for ``steps`` steps.

    ``integer=False``: float ``core.neuron.cuba_lif_step``. ``integer=True``: Loihi's
    ``core.loihi.lif_step`` with the layer quantized as spikeport does (threshold -> vth, leaks ->
    du/dv, input I -> round(I / s) synaptic-input units with the state scale s = theta / 1024).
    """
    cur = np.asarray(current, dtype=np.float64).ravel()
    spikes = np.zeros((steps, cur.size), dtype=bool)
    if integer:
        s = theta / quant.VTH_TARGET_MAX
        p = loihi.LIFParams(du=quant.du_from_decay(beta_syn), dv=quant.dv_from_decay(beta_mem),
                            vth=quant.threshold_int(theta, s))
        a_in = np.rint(cur / s).astype(np.int64)
        u = v = np.zeros(cur.size, dtype=np.int64)
        for t in range(steps):
            spikes[t], u, v = loihi.lif_step(u, v, a_in, p)
    else:
        u = v = np.zeros(cur.size)
        for t in range(steps):
            spikes[t], u, v = neuron.cuba_lif_step(cur, u, v, beta_syn=beta_syn, beta_mem=beta_mem, theta=theta)
    return _steady_rate(spikes).reshape(np.shape(current))


@dataclass(frozen=True)
class FICurve:
    """f-I curves on a grid of constant inputs [K] (float units); rates in spikes/step."""

    current: np.ndarray
    smooth: np.ndarray
    smooth_grad: np.ndarray
    staircase: np.ndarray
    simulated: np.ndarray
    simulated_loihi: np.ndarray


def fi_curve(current: np.ndarray, beta_syn: float = 0.5, beta_mem: float = 0.9, theta: float = 1.0,
             smooth: float = 0.1, steps: int = 2000) -> FICurve:
    """The smooth curve and its derivative, the analytic staircase and both simulated staircases."""
    cur = np.asarray(current, dtype=np.float64)
    ct = torch.as_tensor(cur)
    return FICurve(current=cur, smooth=smooth_rate(ct, beta_syn, beta_mem, theta, smooth).numpy(),
                   smooth_grad=smooth_rate_grad(ct, beta_syn, beta_mem, theta, smooth).numpy(),
                   staircase=staircase_rate(cur, beta_syn, beta_mem, theta),
                   simulated=simulated_rate(cur, beta_syn, beta_mem, theta, steps),
                   simulated_loihi=simulated_rate(cur, beta_syn, beta_mem, theta, steps, integer=True))


class FiRateSpike(torch.autograd.Function):
    """Forward H(z) (strict); backward ds/dz = dr_s/dI at ``i_eq`` (a constant, no gradient)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, slope_at: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(slope_at)
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slope_at,) = ctx.saved_tensors
        return grad * slope_at, None


class FiRateDense(LIFDense):
    """CUBA-LIF layer whose surrogate is the derivative of the smoothed discrete f-I curve."""

    def __init__(self, spec: LayerSpec, input_unit: float = 1.0, surrogate_slope: float = 10.0, smooth: float = 0.1):
        super().__init__(spec, input_unit, surrogate_slope)
        self.smooth = float(smooth)

    def spike_function(self, theta: float, beta_syn: float, beta_mem: float):
        def spike(z, cur_t, u_prev):
            with torch.no_grad():  # I_eq = (1 - beta_syn) u[t], u[t] = beta_syn u[t-1] + cur[t]
                i_eq = (1.0 - beta_syn) * (beta_syn * u_prev + cur_t)
                slope_at = smooth_rate_grad(i_eq, beta_syn, beta_mem, theta, self.smooth)
            return FiRateSpike.apply(z, slope_at)
        return spike


class FiRate(Method):
    name = "firate"
    layer_cls = FiRateDense

    def layer_kwargs(self, cfg) -> dict:
        return {"smooth": float(cfg.firate_smooth)}
