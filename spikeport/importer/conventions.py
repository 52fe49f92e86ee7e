"""What each NIR producer means by the nodes it writes (measured on snnTorch 1.0.0, Norse 1.1.0,
Sinabs 3.1.3, Rockpool 3.1.0 and spikeport's own export).

NIR stores neither a time step nor a reset rule, and peers disagree on both (snnTorch hard-codes dt =
1e-4, Norse defaults to 1e-3, Sinabs and Rockpool count steps; a graph exported with reset by
subtraction reads back as reset to zero). A :class:`Producer` pins every choice a discrete simulation of a NIR graph
needs; :func:`resolve` picks one from ``--producer`` (or the graph's metadata for ``auto``) and
refuses to guess. The float reference simulator (:mod:`spikeport.importer.simulate`) and the Loihi
lowering (:mod:`spikeport.importer.lower`) both read these fields, nothing else.

Per-step neuron updates, with ``dt`` in seconds (explicit everywhere) and ``x`` the summed input:

* ``euler``: NIR's ODEs taken one forward-Euler step, current first (spikeport, snnTorch, Norse):
  ``I <- I + dt/tau_syn (w_in x - I)``; ``v <- v + dt/tau_mem (v_leak - v + r I)``.
* ``exp``: exact exponential leak (Rockpool): ``I <- exp(-dt/tau_syn) (I + x)``;
  ``v <- exp(-dt/tau_mem) v + I + v_leak``; ``r``, ``w_in`` only carry dt.
* ``steps``: Sinabs counts steps: ``v <- exp(-1/tau) v + x`` with ``tau`` in steps; ``dt`` unused.

IF (every producer): ``v <- v + r x`` per step, dt unused (``r`` ignored where the peer ignores it),
as every peer integrates it; LI / CubaLI are LIF / CubaLIF without threshold (output: v).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from spikeport.errors import SpikeportError

RESETS = ("zero", "subtract")
# --reset-timing: a spiking neuron resets in the step it spikes (snnTorch reset_delay=False, every other
# peer, Loihi) or on the next step, where v is set to 0 (or lowered by v_th) and cannot spike
# (snnTorch reset_delay=True, and RSynaptic 0.8.0-1.0.0 whatever reset_delay says)
TIMINGS = {"same-step": "same_step", "next-step": "next_step"}
NEXT_STEP_PRODUCERS = ("snntorch",)  # whose neuron models implement the next-step reset


@dataclass(frozen=True)
class Producer:
    """Conventions of one NIR producer. ``threshold``: ``">"`` or ``">="``; ``reset``: ``"zero"``
    (v <- v_reset) or ``"subtract"`` (v <- v - n * v_threshold); ``multi_spike``: n = trunc(v / v_th)
    spikes per step instead of one; ``if_clamp``: IF membranes clamped at -v_threshold after the
    reset (Sinabs' ``min_v_mem``); ``init_v_leak``: membranes (and Norse's synapse) start at v_leak;
    ``synapse_v_leak``: the synaptic current also leaks toward v_leak (Norse's LIBox synapse);
    ``flatten_batch``: Flatten's start/end dims count the batch; ``input_batch``: the Input shape starts
    with the exporter's sample batch of 1 (Norse, Rockpool); ``recurrent_cuba_reset``:
    ``"same_step"`` or ``"next_step"`` for a CubaLIF inside a recurrent loop (snnTorch RSynaptic as
    released: the step after a spike sets v to 0, discarding that step's input to v, and cannot
    spike); ``reset_timing``: the same for every other spiking layer (``--reset-timing`` sets both); ``uses_r``: LIF/CubaLIF input gains r*dt/tau (and w_in*dt/tau_syn) apply; ``dt_default``: the dt the peer's own importer
    assumes (None: it has none)."""

    name: str
    decay: str = "euler"
    threshold: str = ">"
    reset: str = "zero"
    multi_spike: bool = False
    if_clamp: bool = False
    init_v_leak: bool = False
    synapse_v_leak: bool = False
    flatten_batch: bool = False
    input_batch: bool = False
    recurrent_cuba_reset: str = "same_step"
    reset_timing: str = "same_step"
    uses_r: bool = True
    dt_default: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def timing(self, kind: str, recurrent: bool) -> str:
        """``"same_step"`` or ``"next_step"``: when a spiking neuron of ``kind`` resets."""
        return self.recurrent_cuba_reset if (recurrent and kind == "CubaLIF") else self.reset_timing

    def describe(self) -> dict:
        """The conventions as plain JSON values (written into import.json)."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


PRODUCERS: dict[str, Producer] = {
    "spikeport": Producer(
        "spikeport", dt_default=None,
        notes=("spikeport export: CubaLIF, current first, strict '>', reset to zero, bias via v_leak; "
               "dt in graph metadata 'spikeport.dt'",)),
    "snntorch": Producer(
        "snntorch", recurrent_cuba_reset="next_step", dt_default=1e-4,
        notes=("snnTorch hard-codes dt = 1e-4 in export_to_nir and import_from_nir",
               "Leaky/Synaptic: mem = beta*mem + syn, spike when mem > threshold, reset_delay=False "
               "(reset in the same step); the reset rule is not stored (default subtract in snnTorch, "
               "import_from_nir uses zero): pass --reset",
               "RSynaptic 0.8.0-1.0.0 drops the same-step reset: v is set to 0 on the step after a "
               "spike and that step's input is discarded from v (RLeaky resets in the same step); graphs "
               "trained with a same-step reset (e.g. the NIR paper's braille RNNs, snnTorch git 40ad136, "
               "reset_delay=False) need --reset-timing same-step",
               "NIR stores neither the reset rule nor its timing: pass --reset and --reset-timing "
               "(next-step is snnTorch's reset_delay=True)",
               "v_leak must be 0 (snnTorch refuses others); Flatten dims are batch-less (export side)")),
    "norse": Producer(
        "norse", init_v_leak=True, synapse_v_leak=True, flatten_batch=True, input_batch=True, dt_default=1e-3,
        notes=("Norse's from_nir defaults to dt = 1e-3; pass the graph's dt explicitly",
               "CubaLIF: I += dt/tau_syn*((v_leak - I) + w_in*x) (the synapse also leaks to v_leak), "
               "v += dt/tau_mem*((r*I + v_leak) - v), spike when v > v_th, v <- v_reset",
               "LIF: Norse ignores r (v += dt/tau*(x + v_leak - v)); membranes start at v_leak",
               "IF: v += x (dt and r unused), starts at v_reset; Flatten dims and Input shapes count the batch",
               "to_nir writes LIFCell as a CubaLIF with r = w_in = 1, which from_nir (and NIR) read with input "
               "gain dt/tau_syn * dt/tau_mem, not LIFCell's; spikeport follows from_nir")),
    "sinabs": Producer(
        "sinabs", decay="steps", threshold=">=", reset="subtract", multi_spike=True, if_clamp=True,
        uses_r=False, dt_default=None,
        notes=("Sinabs counts steps: LIF/LI decay exp(-1/tau) with tau in steps, no dt, r ignored",
               "IF/LIF emit n = trunc(v / v_th) spikes when v >= v_th and subtract n*v_th; IF clamps v "
               "at -v_th (min_v_mem)", "SumPool2d is a plain sum; Flatten dims are batch-less")),
    "rockpool": Producer(
        "rockpool", decay="exp", threshold=">=", reset="subtract", multi_spike=True, uses_r=False, input_batch=True,
        dt_default=None,
        notes=("Rockpool writes r = tau*exp(-dt/tau)/dt only to carry dt (its from_nir reads dt = tau/(1+r), "
               "which is not the dt written); pass --dt explicitly",
               "LIFTorch: i += x; v *= exp(-dt/tau_mem); i *= exp(-dt/tau_syn); v += i + v_leak (v_leak is a "
               "per-step bias); r and w_in unused",
               "spikes n = floor(v / v_th) when v >= v_th (at most 2**16), subtract n*v_th",
               "from_nir casts LI's tau to an integer (a Rockpool bug); spikeport reads LI as NIR's Euler LI")),
}

# Graph metadata keys or producer strings that identify a producer for ``--producer auto``.
_MARKERS = {"spikeport": "spikeport", "snntorch": "snntorch", "norse": "norse", "sinabs": "sinabs",
            "rockpool": "rockpool"}


def detect(metadata: dict | None) -> str | None:
    """The producer a graph's top-level metadata names, or None when it says nothing usable."""
    meta = metadata or {}
    if not isinstance(meta, dict):
        return None
    if isinstance(meta.get("spikeport"), dict):
        return "spikeport"
    for key in ("producer", "source", "framework", "library"):
        val = meta.get(key)
        if isinstance(val, bytes):
            val = val.decode(errors="replace")
        if isinstance(val, np.ndarray) and val.shape == ():
            val = val.item()
        if isinstance(val, str):
            low = val.lower()
            hits = [p for m, p in _MARKERS.items() if m in low]
            if len(hits) == 1:
                return hits[0]
    return None


def resolve(name: str, metadata: dict | None, reset: str | None, path: str,
            reset_timing: str | None = None) -> Producer:
    """The conventions to apply: ``name`` from ``--producer`` (``auto`` reads the graph metadata and
    refuses to guess), with ``reset`` (``--reset``) overriding the reset rule and ``reset_timing``
    (``--reset-timing same-step|next-step``) when every spiking layer resets."""
    if name == "auto":
        found = detect(metadata)
        if found is None:
            raise SpikeportError(f"{path}: --producer auto: the graph metadata does not name its producer; "
                                 f"pass --producer {{{','.join(PRODUCERS)}}}")
        name = found
    if name not in PRODUCERS:
        raise SpikeportError(f"--producer must be one of {', '.join(PRODUCERS)} or auto, got {name!r}")
    prod = PRODUCERS[name]
    if reset is not None:
        if reset not in RESETS:
            raise SpikeportError(f"--reset must be one of {', '.join(RESETS)}, got {reset!r}")
        prod = replace(prod, reset=reset)
    if reset_timing is not None:
        if reset_timing not in TIMINGS:
            raise SpikeportError(f"--reset-timing must be one of {', '.join(TIMINGS)}, got {reset_timing!r}")
        timing = TIMINGS[reset_timing]
        if timing == "next_step" and prod.name not in NEXT_STEP_PRODUCERS:
            raise SpikeportError(f"--reset-timing next-step: {prod.name}'s neurons reset in the step they spike; "
                                 f"spikeport models the next-step reset for {', '.join(NEXT_STEP_PRODUCERS)}")
        prod = replace(prod, reset_timing=timing, recurrent_cuba_reset=timing)
    return prod


def timing_words(prod: Producer) -> str:
    """The reset timing in ``--reset-timing`` words, e.g. ``same-step`` or ``same-step (recurrent CubaLIF:
    next-step)``."""
    word = {v: k for k, v in TIMINGS.items()}
    ff, rec = word[prod.reset_timing], word[prod.recurrent_cuba_reset]
    return ff if ff == rec else f"{ff} (recurrent CubaLIF: {rec})"


def graph_dt(metadata: dict | None) -> float | None:
    """dt stored by spikeport's export (``metadata['spikeport']['dt']``), else None."""
    sp = (metadata or {}).get("spikeport") if isinstance(metadata, dict) else None
    if isinstance(sp, dict) and "dt" in sp:
        return float(np.asarray(sp["dt"]))
    return None
