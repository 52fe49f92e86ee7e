"""What a training method is: how it builds its layers, scores its outputs and reads out a class.

A method is a :class:`Method` object (one per name in ``TrainConfig.method``, see ``methods.METHODS``).
The default behaviour is the baseline ``lif``: plain :class:`~spikeport.train.model.LIFDense` layers,
cross-entropy on output spike counts, argmax readout. Methods override only what differs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeport.train.model import LIFDense


def class_counts(spikes: torch.Tensor, population: int = 1) -> torch.Tensor:
    """Output spikes [T, B, C * population] -> spike count of each class [B, C]: neurons c*population ..
    (c+1)*population - 1 vote for class c (as ``measure.readout.predict`` reads a deployed graph)."""
    counts = spikes.sum(0)
    return counts if population == 1 else counts.unflatten(1, (-1, population)).sum(2)


def membrane_logits(v: torch.Tensor, population: int = 1) -> torch.Tensor:
    """The output integrator's voltage v [T, B, C * population] (float units) -> logits [B, C]: each class's
    voltage at the last step (summed over its group, as the deployed readout reads it) divided by T, the
    mean synaptic current per step (so a softmax starts near its linear range whatever T is)."""
    last = v[-1] / v.shape[0]
    return last if population == 1 else last.unflatten(1, (-1, population)).sum(2)


class Method:
    """Base method: CUBA-LIF layers, loss = CE(softmax over output spike counts), readout = argmax of counts
    (with ``cfg.population`` > 1, a class's count is the sum over its group of output neurons); with
    ``cfg.readout = "membrane"`` the output layer is a non-spiking integrator and both read its last voltage."""

    name = "lif"
    layer_cls: type[LIFDense] = LIFDense

    def layer_kwargs(self, cfg) -> dict:
        """Extra keyword arguments of ``layer_cls`` taken from the config."""
        return {}

    def loss(self, outs: list[torch.Tensor], y: torch.Tensor, cfg) -> torch.Tensor:
        """outs: spikes of every layer, each [T, B, N] float (``cfg.readout`` "membrane": the last is the output
        integrator's voltage); y [B] int64 class labels -> scalar loss."""
        if cfg.readout == "membrane":
            return F.cross_entropy(membrane_logits(outs[-1], cfg.population), y)
        return F.cross_entropy(class_counts(outs[-1], cfg.population), y)

    def readout_meta(self, cfg, n_classes: int) -> dict:
        """Graph metadata (``spikeport.*``) that tells :func:`spikeport.core.readout.predict` how to
        turn output spikes (or the output integrator's voltage) into a class."""
        return {"readout": cfg.readout, **({"readout_population": int(cfg.population)} if cfg.population > 1 else {})}

    def param_groups(self, model: torch.nn.Module, cfg) -> list[dict]:
        """The optimizer's parameter groups (one, at ``cfg.lr``, unless a method sets its own rates)."""
        return [{"params": self.trainable(model)}]

    def trainable(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        """Parameters the optimizer updates."""
        return [p for p in model.parameters() if p.requires_grad]

    def prepare(self, model: torch.nn.Module, cfg) -> None:
        """Per-layer choices the shared layer arguments cannot express, made once the model is built
        (by ``checkpoint.build_model``, so a loaded run gets them too)."""

    def metrics(self, model: torch.nn.Module) -> dict:
        """Method-specific values for metrics.json (learned constants, sparsity, ...)."""
        return {}
