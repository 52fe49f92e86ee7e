"""Training configuration: one pydantic model, written to and read from ``config.json`` (validated).

Types and ranges live in the field annotations (:class:`spikeport.files.schema.StrictModel`: unknown keys,
type conversions, NaN and inf are refused); the rules that tie fields together are one
``model_validator``. Every failure is a one-line :class:`SpikeportError` naming the file and field.
A config is checked when built, and again by :meth:`TrainConfig.validate` after attribute assignment
(assignment itself does not check, so the CLI can override several fields and then validate once).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from spikeport.data import DATASETS, ENCODERS, EVENTS, TEMPORAL
from spikeport.errors import SpikeportError
from spikeport.files import fileio
from spikeport.files.schema import FieldError, Invalid, StrictModel, error_line

METHODS = ("lif", "klif", "bpsrm", "spikeseq", "hnsg", "firate")  # implemented in spikeport.train.methods
ARCHS = ("fc", "conv", "rfc")  # dense MLP; conv + pool + dense (train.layers); recurrent hidden layers
NEURONS = ("lif", "sigma-delta")  # CUBA LIF (train.model, the methods) or sigma-delta ReLU (train.sigma_delta)
ARCH_METHODS = {  # methods whose layers train.layers extends, per non-fc arch
    "conv": ("lif", "klif", "bpsrm", "spikeseq", "firate"),  # bpsrm: TCN per feature map
    "rfc": ("lif", "klif", "spikeseq", "firate"),  # (TCN would not normalize the recurrent input)
}
CONFIG_VERSION = 1

Count = Annotated[int, Field(ge=1, le=100_000)]  # steps, epochs, samples per batch, neurons per class
Decay = Annotated[float, Field(ge=0.0, le=1.0)]  # a per-step decay factor
Positive = Annotated[float, Field(gt=0.0, lt=1e6)]
Unit = Annotated[float, Field(gt=0.0, le=1.0)]  # a fraction in (0, 1]
LayerSize = Annotated[int, Field(ge=1, le=65536)]  # neurons of one hidden layer
ChannelCount = Annotated[int, Field(ge=1, le=4096)]  # output channels of one conv layer


class TrainConfig(StrictModel):
    """Everything that determines a training run (with ``seed``, the run is reproducible)."""

    data: Literal[DATASETS] = "digits"
    data_dir: str | None = None  # folder of IDX / N-MNIST files (None: the default data folder)
    method: Literal[METHODS] = "lif"
    # "sigma-delta": ReLU layers sending thresholded deltas (Loihi 2 SDNN, train.sigma_delta; the sd_* fields)
    neuron: Literal[NEURONS] = "lif"
    arch: Literal[ARCHS] = "fc"
    hidden: list[LayerSize] = Field(default_factory=lambda: [128])  # hidden layer sizes
    time_steps: Count = 16
    encoder: Literal[ENCODERS + (EVENTS,)] = "direct"  # events: the event counts of a temporal dataset, as they are
    epochs: Count = 20
    batch_size: Count = 64
    lr: Positive = 2e-3
    beta_syn: Decay = 0.5
    beta_mem: Decay = 0.9
    theta: Positive = 1.0
    bias: bool = False
    surrogate_slope: Positive = 10.0
    qat: bool = True
    # run the fused LIF op's loops through torch.compile: true, false, or "auto" (when the run is long enough to
    # repay the compile time and a compiler is usable; train.compiling). Speed only: the trained weights agree.
    compile: bool | Literal["auto"] = "auto"
    # Loihi integers for: "netx" (weight_exp 0, bias_exp 6: what lava-dl's netx HDF5 expresses, so `spikeport
    # export --netx` writes the very network trained; core.quant) or "lava" (any weight / bias exponent: a right
    # shift of a layer's summed input, which netx cannot write). A checkpoint saved before this field: "lava".
    # "xylo-audio2": SynSense Xylo Audio 2's integers instead (train.xylo_model: arch "rfc" with one hidden layer,
    # 8-bit weights with a shift per matrix, bit-shift leaks 1 - 2**-dash nearest beta_syn / beta_mem, 16-bit
    # saturating state, subtractive multi-spike hidden neurons); `spikeport export --xylo` writes it.
    target: Literal["lava", "netx", "xylo-audio2"] = "netx"
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    limit: Annotated[int, Field(ge=1)] | None = None  # training samples used (None: all)
    population: Count = 1  # output neurons per class: a class scores the spikes of its group (spike_count readout)
    # how output neurons become a class: "spike_count" (argmax of spike counts) or "membrane" (the output layer
    # is a non-spiking integrator, no voltage leak, read once at the last step: argmax of its voltage; the loss
    # is on that voltage; core.readout)
    readout: Literal["spike_count", "membrane"] = "spike_count"
    augment_flip: bool = False  # training batches: mirror each image left-right with probability 1/2 (data.augment)
    # training batches: shift each image by up to this many pixels, zero-filled (0: off)
    augment_shift: Annotated[int, Field(ge=0, le=8)] = 0
    # architecture fields of arch "conv" (train.layers.build_conv; the fc part is ``hidden``)
    # output channels of each conv layer
    channels: Annotated[list[ChannelCount], Field(min_length=1)] = Field(default_factory=lambda: [8, 16])
    kernel: Annotated[int, Field(ge=1, le=15)] = 3  # square conv kernel (padding kernel // 2, stride 1)
    # pool window = stride before every conv but the first and before the flatten (1: none)
    pool: Annotated[int, Field(ge=1, le=16)] = 2
    pool_mode: Literal["sum", "avg"] = "sum"  # "avg": its 1/pool^2 folded into the next layer's input unit
    # method-specific fields (each is read only by the method named in its comment)
    # klif: initial learnable scale k of the surrogate
    klif_k_init: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    # klif: learning rate of k relative to lr (0: k stays at klif_k_init)
    klif_k_lr: Annotated[float, Field(ge=0.0, le=1e3)] = 1.0
    # klif: layers with KLIF's ReLU floor on v: "all", or "hidden" (output layer plain LIF)
    klif_floor: Literal["all", "hidden"] = "all"
    tcn_momentum: Unit = 0.1  # bpsrm: running-statistics momentum of temporal channel normalization
    # bpsrm: batch statistics from the first N samples of each (shuffled) batch; 0: all
    tcn_stat_batch: Annotated[int, Field(ge=0)] = 0
    seq_period: Annotated[int, Field(ge=1)] = 2  # spikeseq: the target neuron fires every seq_period steps ...
    seq_onset: Annotated[int, Field(ge=0)] = 1  # spikeseq: ... from step seq_onset (0-based); others stay silent
    # spikeseq: trace decay alpha, f[t] = alpha * f[t-1] + s[t]
    seq_filter: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    # spikeseq: hidden neurons below this rate (spikes/step) are penalized
    seq_min_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    # spikeseq: weight of that firing-rate penalty in the loss
    seq_rate_weight: Annotated[float, Field(ge=0.0, le=1e6)] = 1.0
    keep_fraction: Unit = 0.5  # hnsg: fraction of each layer's out*in synapses kept (0.5 = half)
    # hnsg: frozen weight magnitude sigma = hnsg_gain / sqrt(keep_fraction * fan_in)
    hnsg_gain: Annotated[float, Field(gt=0.0, le=100.0)] = 0.4
    # firate: softplus width gamma of the smoothed f-I curve (rheobase units)
    firate_smooth: Annotated[float, Field(gt=0.0, le=10.0)] = 0.1

    # sigma-delta: hidden layers send a change once it reaches this fraction of the layer's calibrated activation
    # range (0: every change); the input layer once a pixel changed by this fraction of full scale
    sd_threshold: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    sd_input_threshold: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    # sigma-delta: weight of the loss term on messages (the L1 size of every layer's activation changes)
    sd_message_penalty: Annotated[float, Field(ge=0.0, le=1e3)] = 0.0
    # sigma-delta: dropout probability on the input of every dense layer while training (0: off)
    sd_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    # training samples held out (seeded, stratified; data.split) and scored instead of the test set (metrics.json,
    # "scored_on"), so hyper-parameters are chosen on data never trained on and never on the test set: a fraction
    # of the training set in (0, 0.5], or a whole number >= 1 of samples (0: off)
    validation: Annotated[float, Field(ge=0.0, le=1_000_000)] = 0.0

    def __init__(self, **fields: Any):
        """Keyword construction checks every field (pydantic also validates through here)."""
        try:
            super().__init__(**fields)
        except ValidationError as err:
            raise Invalid(err) from None

    @model_validator(mode="after")
    def _combinations(self) -> "TrainConfig":
        """Field combinations a method or an architecture cannot train (raises FieldError)."""
        if 0.5 < self.validation < 1 or (self.validation >= 1 and self.validation != int(self.validation)):
            raise FieldError("validation", f"{self.validation} is neither a fraction in (0, 0.5] nor a whole number "
                             "of samples")
        if (self.data in TEMPORAL) != (self.encoder == EVENTS):
            raise FieldError("encoder", f"dataset {self.data!r} needs encoder " + (f"{EVENTS!r} (its event counts)" if
                             self.data in TEMPORAL else f"one of {', '.join(ENCODERS)} (it is static)"))
        if self.target == "xylo-audio2" and (self.arch, len(self.hidden), self.method) != ("rfc", 1, "lif"):
            raise FieldError("target", "xylo-audio2 trains arch 'rfc' with one hidden layer (Xylo's recurrent hidden "
                                       "population) and method 'lif'")
        if self.target == "xylo-audio2" and self.encoder == "direct":
            raise FieldError("encoder", "xylo-audio2 takes input events (at most 15 per channel per step): use an "
                                        "events, rate or latency encoder")
        if self.neuron == "sigma-delta":
            return self._sigma_delta()
        if self.arch != "fc" and self.method not in ARCH_METHODS[self.arch]:
            raise FieldError("method", f"arch {self.arch!r} trains with methods {', '.join(ARCH_METHODS[self.arch])}, "
                                       f"got {self.method!r}")
        if self.method == "spikeseq" and self.population != 1:
            raise FieldError("population", "must be 1 for spikeseq (its readout compares every output neuron's train)")
        if self.method == "spikeseq" and self.seq_onset >= self.time_steps:
            raise FieldError("seq_onset", f"must be below time_steps ({self.time_steps}) so the target trains "
                                          "have spikes")
        if self.method == "spikeseq" and self.readout != "spike_count":
            raise FieldError("readout", "spikeseq reads out the output spike trains (its own readout)")
        if self.method in ("bpsrm", "hnsg") and self.bias:
            why = "temporal channel normalization's shift is the bias" if self.method == "bpsrm" else \
                "a hidden-network search learns no parameters but the synapse scores"
            raise FieldError("bias", f"must be false for method {self.method} ({why})")
        if self.method == "bpsrm" and self.beta_syn >= 1.0:
            raise FieldError("beta_syn", "must be below 1 for bpsrm (TCN's centring divides by 1 - beta_syn)")
        if self.method == "firate" and not (self.beta_syn < 1.0 and self.beta_mem > 0.0):
            raise FieldError("beta_syn", "firate needs beta_syn < 1 and beta_mem > 0 (a finite, smooth f-I curve)")
        return self

    def _sigma_delta(self) -> "TrainConfig":
        """What a sigma-delta network trains with (raises FieldError)."""
        rules = (("method", self.method == "lif", "must be 'lif' (the default) for neuron sigma-delta: the LIF "
                                                  "training methods do not apply"),
                 ("arch", self.arch in ("fc", "conv"), "neuron sigma-delta trains arch fc or conv"),
                 ("encoder", self.encoder in ("direct", "moving"), "neuron sigma-delta reads graded frames: "
                                                                   "encoder direct or moving"),
                 ("population", self.population == 1, "must be 1 for neuron sigma-delta (one output per class)"),
                 ("readout", self.readout == "spike_count", "neuron sigma-delta reads its sigma output's value at "
                                                            "the last step (readout last_value): leave readout unset"),
                 ("target", self.target == "netx", "must be 'netx' for neuron sigma-delta (it deploys as netx "
                                                   "SDNN blocks)"))
        for name, ok, why in rules:
            if not ok:
                raise FieldError(name, why)
        return self

    def validate(self, source: str = "config") -> "TrainConfig":  # type: ignore[override]
        """Check every field again (after attribute assignment); ``source`` prefixes the error line.
        Returns ``self``; an int given for a float field is stored as float."""
        try:
            checked = type(self).model_validate(dict(self.__dict__))
        except Invalid as bad:
            raise error_line(bad.error, source) from None
        self.__dict__.update(checked.__dict__)
        return self

    def override(self, given: dict[str, Any], hidden: str | None = None) -> "TrainConfig":
        """Command-line options over this config: every ``given`` field that is not None, and ``hidden`` as
        comma-separated layer sizes ("256,128"); then :meth:`validate` (source "options")."""
        for key, val in given.items():
            if val is not None:
                setattr(self, key, val)
        if hidden is not None:
            try:
                self.hidden = [int(h) for h in hidden.split(",") if h.strip()]
            except ValueError:
                raise SpikeportError(f"--hidden must be comma-separated integers, got {hidden!r}") from None
        return self.validate("options")

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (lists copied)."""
        return self.model_dump()

    @classmethod
    def from_dict(cls, obj: dict[str, Any], source: str = "config") -> "TrainConfig":
        """A validated config from ``obj`` (missing fields take their defaults; unknown ones are errors)."""
        if not isinstance(obj, dict):
            raise SpikeportError(f"{source}: the configuration must be a table / object, got {type(obj).__name__}")
        try:
            return cls.model_validate(obj)
        except Invalid as bad:
            raise error_line(bad.error, source) from None

    @classmethod
    def from_toml(cls, path: str | Path) -> "TrainConfig":
        """The ``[train]`` table of a TOML file (or its top level when it has no ``[train]``)."""
        import tomli

        path = Path(path)
        fileio.refuse_pickle(path)
        try:
            obj = tomli.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpikeportError(f"{path}: file not found") from None
        except (tomli.TOMLDecodeError, UnicodeDecodeError, OSError) as err:
            raise SpikeportError(f"{path}: not valid TOML ({err})") from None
        section = obj.get("train", obj)
        if not isinstance(section, dict):
            raise SpikeportError(f"{path}: [train] must be a table")
        others = sorted(set(obj) - {"train"}) if "train" in obj else []
        if others:
            raise SpikeportError(f"{path}: unknown key(s) {', '.join(others)} (the options go in [train])")
        return cls.from_dict(section, source=str(path))
