"""An imported graph's lowered layers as spikeport training modules, and their checkpoint.

Why the importer imports ``train``: fine-tuning an imported graph on Loihi integers (issue 16) trains
the lowered layers (:class:`~spikeport.importer.lower.LayerPlan`) with spikeport's own training
modules: :class:`~spikeport.train.model.LIFDense` (QAT forward, the fused multi-step CUBA-LIF op of
``train.fused`` with its BPTT backward, the integer forward through ``core.loihi.lif_step``) and
:class:`~spikeport.train.layers.RecurrentMixin`. A second copy of those dynamics here would drift from
the first; the dependency points from the importer (a stage that writes a run) down to the training
room, and ``train`` never imports ``importer``.

One layer (:class:`LayerArch`, the JSON form of a LayerPlan's geometry) computes, in float units
(spikeport's order, reset to zero, strict ``>``; a LayerPlan exactly)::

    a[t] = M x[t] (+ W_rec s[t-1]) (+ line);  u = beta_syn u + a;  v = beta_mem v + u + bias;  s = v > theta; v <- 0

``M`` is ``[sum pool (kernel, stride, padding)] (flatten + dense | conv2d)`` on the layer's input
``[C, H, W]`` (C-major flat), the same map :class:`spikeport.core.net.Connection` runs. Its integer
forward delivers ``shift(q @ x, weight_exp)`` (Dense / Sparse) or the 24-bit wrap of ``q * x`` (a Lava
Conv: ``weight_exp = 0`` and a pool, if any, that tiles its input), as the emulator and Lava do.
Convolutions are quantized with ``weight_exp = 0`` wherever the threshold fits (Lava Conv, not an
unrolled Sparse).

A layer whose plan has a bias line (``LayerPlan.current``: a constant current into u, e.g. a producer's
Linear bias into a current-based synapse) keeps it as a trained parameter ``line`` (float current per
neuron, or per output channel of a conv): one more weight column on an input that is 1 on every step.
Its integers are :func:`spikeport.importer.quantize.bias_line` on the layer's state scale, the function
the import quantizes the line with; QAT runs them (straight through), the integer forward adds the
line's summed input ``q << e`` every step as the emulator does, and the export writes the same
:class:`~spikeport.nirfmt.line.BiasLine` on the weighted node (:func:`layer_quants`).

A dense layer the import made wide (``--weight-bits 16``: 16-bit feed-forward, recurrent and line weights,
two Loihi synapses each, weight_exp 0) stays wide: its state scale is
:func:`spikeport.importer.quantize.wide_state_scale` of the current float parameters with the import's
``clip`` and ``state_coarser``, QAT rounds to the 16-bit grid and the integer forward and export use it.

Checkpoint: ``model.safetensors`` (tensors only) + ``config.json`` (``format`` =
``spikeport-imported-finetune``: input shape, every layer's LayerArch, the weights' SHA-256).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, ValidationError
from torch import nn

from spikeport.core import loihi, quant
from spikeport.core.linear import Pool2d
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.files.schema import StrictModel, error_line
from spikeport.importer import quantize as import_quant
from spikeport.nirfmt.line import BiasLine
from spikeport.train.layers import RecurrentMixin, SpikingNet, with_mixins
from spikeport.train.model import LayerSpec, LIFDense

FORMAT = "spikeport-imported-finetune"
VERSION = 1
Dim = Annotated[int, Field(ge=1, le=1 << 24)]
Pair = tuple[Annotated[int, Field(ge=0, le=4096)], Annotated[int, Field(ge=0, le=4096)]]
Decay = Annotated[float, Field(ge=0.0, le=1.0)]


class LayerArch(StrictModel):
    """One layer's geometry and neuron constants (see the module docstring). ``in_shape``: the layer's
    input sample (C, H, W), or (n,) for a flat dense input; ``pool``: (kernel, stride, padding) of a
    leading sum pool; ``weight_shape``: dense [out, pooled size] or conv [C_out, C_in/groups, kh, kw];
    ``bias``: none | channel (one per conv channel) | neuron; ``line``: the bias line's layout, likewise
    (see the module docstring); ``clip`` / ``weight_exp``: a dense layer's weight scale ``clip * max|w| /
    127`` and weight exponent as the import calibrated them (None: chosen as for a trained layer);
    ``input_unit``: float value of one integer input unit; ``max_input``: largest integer input of one
    synapse per step (before pooling)."""

    name: str
    kind: Literal["dense", "conv"]
    in_shape: list[Dim]
    out_shape: list[Dim]
    weight_shape: list[Dim]
    pool: Optional[tuple[Pair, Pair, Pair]] = None
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: Dim = 1
    beta_syn: Decay
    beta_mem: Decay
    theta: Annotated[float, Field(gt=0.0, lt=1e12)]
    bias: Literal["none", "channel", "neuron"]
    line: Literal["none", "channel", "neuron"] = "none"
    clip: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    weight_exp: Optional[Annotated[int, Field(ge=-16, le=16)]] = None
    weight_bits: Literal[8, 16] = 8
    state_coarser: Annotated[int, Field(ge=0, le=16)] = 0
    recurrent: bool
    input_unit: Annotated[float, Field(gt=0.0, lt=1e12)]
    max_input: Dim

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))


def arch_of(plan, input_unit: float, max_input: int, imported: dict | None = None) -> LayerArch:
    """The LayerArch of a :class:`~spikeport.importer.lower.LayerPlan`; a weightless pool layer cannot
    be trained (SpikeportError naming it). ``imported``: the layer's row of import.json's ``layers``; a
    dense layer starts from its calibrated ``clip`` and ``weight_exp`` (so the module's integers start
    as the imported model.nir's; a conv keeps weight_exp 0, Lava Conv)."""
    c = plan.conn
    if c.kind not in ("dense", "conv") or c.weight is None:
        raise SpikeportError(f"layer '{plan.name}': a {c.kind} layer without weights cannot be fine-tuned "
                             "(fine-tuning trains dense, conv and recurrent dense layers)")
    per = np.asarray(plan.bias, np.float64).reshape(c.out_shape[0], -1) if c.kind == "conv" else None
    bias = "none" if not np.any(plan.bias) else \
        "channel" if per is not None and np.allclose(per, per[:, :1], rtol=0, atol=0) else "neuron"
    return LayerArch(
        name=plan.name, kind=c.kind, in_shape=[int(s) for s in c.in_shape], out_shape=[int(s) for s in c.out_shape],
        weight_shape=[int(s) for s in c.weight.shape],
        pool=None if c.pool is None else tuple(tuple(int(v) for v in p) for p in c.pool),
        stride=tuple(int(s) for s in c.stride), padding=tuple(int(s) for s in c.padding),
        dilation=tuple(int(s) for s in c.dilation), groups=int(c.groups), beta_syn=float(plan.beta_syn),
        beta_mem=float(plan.beta_mem), theta=float(plan.theta), bias=bias,
        line="none" if plan.current is None else "channel" if c.kind == "conv" else "neuron",
        **(_calibrated(imported) if c.kind == "dense" else {}), recurrent=plan.recurrent is not None,
        input_unit=float(input_unit), max_input=int(max_input))


def _calibrated(row: dict | None) -> dict:
    """``clip`` and ``weight_exp`` (and, for a wide layer, ``weight_bits`` and ``state_coarser``) of an
    import.json layer row (none when the row lacks them)."""
    if not row or not isinstance(row.get("clip"), (int, float)) or type(row.get("weight_exp")) is not int:
        return {}
    out = {"clip": float(row["clip"]), "weight_exp": int(row["weight_exp"])}
    if row.get("weight_bits") == 16 and type(row.get("state_coarser")) is int:
        out.update(weight_bits=16, state_coarser=int(row["state_coarser"]))
    return out


class PlanMixin:
    """A LIFDense (or LIFDense + RecurrentMixin) whose input map and quantizer follow a LayerArch."""

    def __init__(self, spec: LayerSpec, input_unit: float = 1.0, surrogate_slope: float = 10.0, *,
                 arch: LayerArch):
        self.arch = arch
        super().__init__(spec, input_unit, surrogate_slope)
        self.weight = nn.Parameter(torch.zeros(tuple(arch.weight_shape)))
        size = {"none": 0, "channel": arch.out_shape[0], "neuron": arch.n_out}
        self.bias = nn.Parameter(torch.zeros(size[arch.bias])) if size[arch.bias] else None
        self.line = nn.Parameter(torch.zeros(size[arch.line])) if size[arch.line] else None
        self._line_now = None  # the line's float current [N] during forward (QAT: its integers' value)

    def max_input_int(self) -> int:
        return self.arch.max_input * (int(np.prod(self.arch.pool[0])) if self.arch.pool else 1)

    def float_params(self, x=None):
        """(weight, per-neuron bias [N] or None): a per-channel bias is repeated over positions."""
        b = self.bias
        if b is not None and self.arch.bias == "channel":
            b = b.repeat_interleave(self.arch.n_out // self.arch.out_shape[0])
        return self.weight, b

    def line_current(self) -> torch.Tensor | None:
        """The bias line's float current into u per step and neuron [N] (None without a line)."""
        c = self.line
        if c is not None and self.arch.line == "channel":
            c = c.repeat_interleave(self.arch.n_out // self.arch.out_shape[0])
        return c

    def bias_line(self, lq: quant.LayerQuant) -> BiasLine | None:
        """The line's Loihi integers on ``lq``'s state scale, as the import quantizes a line."""
        c = self.line_current()
        if c is None:
            return None
        c = c.detach().cpu().double().numpy()
        return import_quant.wide_line(c, lq.state_scale) if lq.wide else import_quant.bias_line(c, lq.state_scale)


    def forward(self, x: torch.Tensor, qat: bool = False) -> torch.Tensor:
        """LIFDense's (or RecurrentMixin's) forward with the line's current added to every step's input;
        under QAT the current is the value of its integers (straight-through gradient)."""
        c = self.line_current()
        if c is not None and qat:
            fb = torch.as_tensor(self.bias_line(self.quant()).float_bias(), dtype=c.dtype, device=c.device)
            c = c + (fb - c).detach()
        object.__setattr__(self, "_line_now", c)  # a plain attribute, never a registered parameter
        try:
            return super().forward(x, qat)
        finally:
            object.__setattr__(self, "_line_now", None)

    def input_current(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        cur = super().input_current(x, w)
        return cur if self._line_now is None else cur + self._line_now

    def _map(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """h [M, n_in] -> [M, n_out]: [sum pool] (dense | conv) in h's dtype."""
        a, m = self.arch, h.shape[0]
        if a.pool is None and a.kind == "dense":
            return h @ w.t()
        h = h.reshape(m, *a.in_shape)
        if a.pool is not None:
            h = F.avg_pool2d(h, a.pool[0], a.pool[1], a.pool[2], divisor_override=1)
        if a.kind == "conv":
            h = F.conv2d(h, w, None, a.stride, a.padding, a.dilation, a.groups)
        else:
            h = h.reshape(m, -1) @ w.t()
        return h.reshape(m, -1)

    def project(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        return self._map(x.reshape(T * B, -1), w).reshape(T, B, -1)

    def synaptic_input_int(self, x: torch.Tensor, lq: quant.LayerQuant) -> torch.Tensor:
        """x [T, B, n_in] int64 -> [T, B, n_out] int64 as Lava delivers it (module docstring)."""
        T, B = x.shape[:2]
        q = torch.as_tensor(lq.weight, dtype=torch.float64)
        acc = torch.round(self._map(x.reshape(T * B, -1).to(torch.float64), q)).to(torch.int64).reshape(T, B, -1)
        if self.arch.kind == "conv":
            a = loihi.conv_synaptic_input(acc, lq.weight_exp, self._pool_tiles())
        else:
            a = loihi.shift_exp(acc, lq.weight_exp)
        line = import_quant.line_connection(self.bias_line(lq))
        if line is not None:  # the always-on input's summed input, as the emulator adds it (Population.line_current)
            a = a + torch.as_tensor(line.apply(np.ones((1, 1), np.int64))[0], dtype=torch.int64)
        return a

    def _pool_tiles(self) -> bool:
        a = self.arch
        return a.pool is None or Pool2d(*a.pool).tiles(a.in_shape[1], a.in_shape[2])

    def quantize(self, w: torch.Tensor, bias) -> quant.LayerQuant:
        """The layer's integers as the import quantizes them (:meth:`_quantize`); an output integrator (a
        membrane readout, ``make_integrator``) keeps them and never spikes (``core.quant.as_integrator``)."""
        lq = self._quantize(w, bias)
        return quant.as_integrator(lq) if self.integrator_steps else lq

    def _quantize(self, w: torch.Tensor, bias) -> quant.LayerQuant:
        """int8 weights on clip * max|w| / 127 (saturating); weight_exp: the calibrated one where it keeps
        the threshold on Loihi's grid, 0 for a conv whose threshold fits, else ``quant.choose_weight_exp``
        (no current wrap); threshold and bias on the state scale."""
        wn = w.detach().cpu().double().numpy()
        flat = wn.reshape(wn.shape[0], -1)
        if self.arch.weight_bits == 16:
            return self._quantize_wide(flat, bias)
        ws = self.arch.clip * quant.weight_scale(flat)
        q = quant.quantize_weight(flat, ws)
        s0, du = ws * self.input_unit, quant.du_from_decay(self.spec.beta_syn)
        exp, e = None, self.arch.weight_exp
        if e is not None and quant.VTH_MIN_HEADROOM <= round(self.spec.theta / (s0 * 2.0 ** (-e))) <= loihi.VTH_MAX:
            exp = e
        elif self.arch.kind == "conv" and quant.VTH_MIN_HEADROOM <= round(self.spec.theta / s0) <= loihi.VTH_MAX:
            exp = 0
        if exp is None:
            exp = quant.choose_weight_exp(self.spec.theta, s0, q, self.max_input_int(), du)
        s = s0 * 2.0 ** (-exp)
        bn = np.zeros(self.arch.n_out) if bias is None else bias.detach().cpu().double().numpy()
        mant, bexp = quant.bias_int(bn, s)
        lif = loihi.LIFParams(du=du, dv=quant.dv_from_decay(self.spec.beta_mem),
                              vth=quant.threshold_int(self.spec.theta, s), bias_mant=mant, bias_exp=bexp)
        return quant.LayerQuant(weight=q.reshape(wn.shape), weight_scale=ws, weight_exp=exp, state_scale=s, lif=lif)

    def _quantize_wide(self, flat: np.ndarray, bias) -> quant.LayerQuant:
        """16-bit weights at weight_exp 0 on ``import_quant.wide_state_scale`` (the module docstring)."""
        a = self.arch
        rec = self.weight_rec.detach().cpu().double().numpy() if a.recurrent else None
        line = self.line_current()
        line = None if line is None else line.detach().cpu().double().numpy()
        s = import_quant.wide_state_scale(flat, rec, line, self.spec.theta, self.input_unit, a.clip, a.state_coarser)
        bn = np.zeros(a.n_out) if bias is None else bias.detach().cpu().double().numpy()
        mant, bexp = quant.bias_int(bn, s)
        lif = loihi.LIFParams(du=quant.du_from_decay(self.spec.beta_syn), dv=quant.dv_from_decay(self.spec.beta_mem),
                              vth=quant.threshold_int(self.spec.theta, s), bias_mant=mant, bias_exp=bexp)
        ws = s / self.input_unit
        return quant.LayerQuant(weight=quant.quantize_wide(flat, ws), weight_scale=ws, weight_exp=0, state_scale=s,
                                lif=lif, wide=True)


class PlanRecurrentMixin:
    """A recurrent PlanMixin layer's recurrent integers: RecurrentMixin's, or 16-bit at exponent 0 when wide."""

    def quant_recurrent(self, lq: quant.LayerQuant | None = None) -> tuple[np.ndarray, int, float]:
        lq = lq or self.quant()
        if not lq.wide:
            return super().quant_recurrent(lq)
        return quant.quantize_wide(self.weight_rec.detach().cpu().double().numpy(), lq.state_scale), 0, lq.state_scale


def build(archs: list[LayerArch], input_shape: tuple[int, ...], surrogate_slope: float = 10.0) -> SpikingNet:
    """The training network of ``archs`` (parameters zero until loaded or set by :func:`init_from`)."""
    plain, rec = with_mixins(LIFDense, PlanMixin), with_mixins(LIFDense, PlanMixin, PlanRecurrentMixin,
                                                                   RecurrentMixin)
    layers = []
    for a in archs:
        spec = LayerSpec(a.n_in, a.n_out, beta_syn=a.beta_syn, beta_mem=a.beta_mem, theta=a.theta,
                         bias=a.bias != "none", recurrent=a.recurrent)
        layers.append((rec if a.recurrent else plain)(spec, a.input_unit, surrogate_slope, arch=a))
    return SpikingNet(layers, input_shape)


@torch.no_grad()
def init_from(model: SpikingNet, plans: list) -> None:
    """Set the float parameters to the lowered plans' (the producer's network in spikeport's units)."""
    for layer, plan in zip(model.layers, plans):
        layer.weight.copy_(torch.as_tensor(plan.conn.weight.reshape(layer.weight.shape)))
        pairs = ((layer.bias, layer.arch.bias, plan.bias), (layer.line, layer.arch.line, plan.current))
        for param, kind, value in pairs:
            if param is not None:
                v = np.asarray(value, np.float64)
                param.copy_(torch.as_tensor(v.reshape(layer.arch.out_shape[0], -1)[:, 0] if kind == "channel" else v))
        if plan.recurrent is not None and layer.arch.recurrent:  # (an output integrator drops its recurrence)
            layer.weight_rec.copy_(torch.as_tensor(plan.recurrent))


def layer_quants(model: SpikingNet) -> list[import_quant.QLayer]:
    """Each layer's integers (LayerQuant, recurrent LayerQuant or None, bias line or None) as
    ``importer.run.build_graph`` takes them."""
    out = []
    for layer in model.layers:
        lq = layer.quant()
        rec = None
        if layer.arch.recurrent:
            q_rec, exp_rec, ws_rec = layer.quant_recurrent(lq)
            rec = quant.LayerQuant(weight=q_rec, weight_scale=ws_rec, weight_exp=exp_rec, state_scale=lq.state_scale,
                                   lif=lq.lif, wide=lq.wide)
        out.append(import_quant.QLayer(lq, rec, layer.bias_line(lq)))
    return out


def save(run_dir: str | Path, model: SpikingNet, info: dict) -> None:
    """Write config.json (architecture, ``info``, the weights' SHA-256), then model.safetensors, atomically."""
    from safetensors.torch import save as to_bytes

    data = to_bytes({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    fileio.write_json(Path(run_dir) / runfolder.CONFIG, {
        "format": FORMAT, "version": VERSION, "input_shape": list(model.input_shape),
        "layers": [layer.arch.model_dump(mode="json") for layer in model.layers],
        "finetune": info, "weights_sha256": hashlib.sha256(data).hexdigest()})
    fileio.write_bytes(Path(run_dir) / runfolder.WEIGHTS, data)


def is_finetuned(run_dir: str | Path) -> bool:
    """True for an imported run folder that holds a fine-tuned checkpoint (config.json of this format)."""
    path = Path(run_dir) / runfolder.CONFIG
    if not (path.is_file() and (Path(run_dir) / runfolder.IMPORT).is_file()):
        return False
    return fileio.read_json(path).get("format") == FORMAT


def load(run_dir: str | Path) -> tuple[SpikingNet, dict]:
    """The fine-tuned network (eval mode) and config.json of ``run_dir``, every field and tensor checked."""
    from safetensors import SafetensorError
    from safetensors.torch import load as from_bytes

    run_dir = Path(run_dir)
    src = str(run_dir / runfolder.CONFIG)
    raw = fileio.read_json(run_dir / runfolder.CONFIG)
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise SpikeportError(f"{src}: field 'format' / 'version' must be {FORMAT!r} / {VERSION}")
    shape = raw.get("input_shape")
    if not (isinstance(shape, list) and 1 <= len(shape) <= 4 and all(type(s) is int and s > 0 for s in shape)):
        raise SpikeportError(f"{src}: field 'input_shape' must be 1 to 4 positive integers")
    if not isinstance(raw.get("layers"), list) or not raw["layers"]:
        raise SpikeportError(f"{src}: field 'layers' must be a non-empty list")
    archs = []
    for i, obj in enumerate(raw["layers"]):
        try:
            archs.append(LayerArch.model_validate_json(json.dumps(obj)))
        except ValidationError as err:
            raise error_line(err, f"{src} layers[{i}]") from None
    try:
        data = (run_dir / runfolder.WEIGHTS).read_bytes()
        tensors = from_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise SpikeportError(f"{run_dir / runfolder.WEIGHTS}: not a valid safetensors file "
                             f"({str(err)[:160]})") from None
    if raw.get("weights_sha256") != hashlib.sha256(data).hexdigest():
        raise SpikeportError(f"{run_dir / runfolder.WEIGHTS}: does not match config.json's 'weights_sha256'")
    model = build(archs, tuple(shape))
    expected = model.state_dict()
    if set(expected) != set(tensors):
        raise SpikeportError(f"{run_dir / runfolder.WEIGHTS}: tensors do not match config.json's layers")
    for name, ref in expected.items():
        t = tensors[name]
        if t.shape != ref.shape or t.dtype != ref.dtype or not torch.isfinite(t).all():
            raise SpikeportError(f"{run_dir / runfolder.WEIGHTS}: tensor '{name}' must be finite {ref.dtype} "
                                 f"{tuple(ref.shape)}, got {t.dtype} {tuple(t.shape)}")
    model.load_state_dict(tensors)
    return model.eval(), raw
