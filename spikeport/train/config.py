"""Training configuration: one dataclass, written to and read from ``config.json`` (validated)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikeport.data import DATASETS, ENCODERS
from spikeport.errors import SpikeportError
from spikeport.files import fileio

METHODS = ("lif", "klif", "bpsrm", "spikeseq", "hnsg", "firate")  # implemented in spikeport.train.methods
ARCHS = ("fc", "conv", "rfc")  # dense MLP; conv + pool + dense (train.layers); recurrent hidden layers
ARCH_METHODS = {  # methods whose layers train.layers extends, per non-fc arch
    "conv": ("lif", "klif", "bpsrm", "spikeseq", "firate"),  # bpsrm: TCN per feature map
    "rfc": ("lif", "klif", "spikeseq", "firate"),  # (TCN would not normalize the recurrent input)
}
CONFIG_VERSION = 1


@dataclass
class TrainConfig:
    """Everything that determines a training run (with ``seed``, the run is reproducible)."""

    data: str = "digits"
    data_dir: str | None = None
    method: str = "lif"
    arch: str = "fc"
    hidden: list[int] = field(default_factory=lambda: [128])
    time_steps: int = 16
    encoder: str = "direct"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    beta_syn: float = 0.5
    beta_mem: float = 0.9
    theta: float = 1.0
    bias: bool = False
    surrogate_slope: float = 10.0
    qat: bool = True
    seed: int = 0
    limit: int | None = None
    population: int = 1  # output neurons per class: a class scores the spikes of its group (spike_count readout)
    augment_flip: bool = False  # training batches: mirror each image left-right with probability 1/2 (data.augment)
    augment_shift: int = 0  # training batches: shift each image by up to this many pixels, zero-filled (0: off)
    # architecture fields of arch "conv" (train.layers.build_conv; the fc part is ``hidden``)
    channels: list[int] = field(default_factory=lambda: [8, 16])  # output channels of each conv layer
    kernel: int = 3  # square conv kernel (padding kernel // 2, stride 1)
    pool: int = 2  # pool window = stride before every conv but the first and before the flatten (1: none)
    pool_mode: str = "sum"  # "sum", or "avg" (its 1/pool^2 folded into the next layer's input unit)
    # method-specific fields (each is read only by the method named in its comment)
    klif_k_init: float = 1.0  # klif: initial learnable scale k of the surrogate (> 0)
    klif_k_lr: float = 1.0  # klif: learning rate of k relative to lr (0: k stays at klif_k_init)
    klif_floor: str = "all"  # klif: layers with KLIF's ReLU floor on v: "all", or "hidden" (output layer plain LIF)
    tcn_momentum: float = 0.1  # bpsrm: running-statistics momentum of temporal channel normalization
    tcn_stat_batch: int = 0  # bpsrm: batch statistics from the first N samples of each (shuffled) batch; 0: all
    seq_period: int = 2  # spikeseq: the target neuron fires every seq_period steps ...
    seq_onset: int = 1  # spikeseq: ... from step seq_onset (0-based); other neurons stay silent
    seq_filter: float = 0.5  # spikeseq: trace decay alpha, f[t] = alpha * f[t-1] + s[t]
    seq_min_rate: float = 0.05  # spikeseq: hidden neurons below this rate (spikes/step) are penalized
    seq_rate_weight: float = 1.0  # spikeseq: weight of that firing-rate penalty in the loss
    keep_fraction: float = 0.5  # hnsg: fraction of each layer's out*in synapses kept (0.5 = half)
    hnsg_gain: float = 0.4  # hnsg: frozen weight magnitude sigma = hnsg_gain / sqrt(keep_fraction * fan_in)
    firate_smooth: float = 0.1  # firate: softplus width gamma of the smoothed f-I curve (rheobase units)

    def validate(self, source: str = "config") -> "TrainConfig":
        def bad(name: str, why: str) -> SpikeportError:
            return SpikeportError(f"{source}: field '{name}' {why}")

        if self.data not in DATASETS:
            raise bad("data", f"must be one of {', '.join(DATASETS)}, got {self.data!r}")
        if self.method not in METHODS:
            raise bad("method", f"must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.arch not in ARCHS:
            raise bad("arch", f"must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.encoder not in ENCODERS:
            raise bad("encoder", f"must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        for name in ("time_steps", "epochs", "batch_size", "population"):
            val = getattr(self, name)
            if not isinstance(val, int) or isinstance(val, bool) or val < 1 or val > 100_000:
                raise bad(name, f"must be a positive integer, got {val!r}")
        if not (isinstance(self.hidden, list)
                and all(isinstance(h, int) and not isinstance(h, bool) and 0 < h <= 65536 for h in self.hidden)):
            raise bad("hidden", f"must be a list of positive layer sizes, got {self.hidden!r}")
        for name in ("beta_syn", "beta_mem"):
            val = getattr(self, name)
            if not isinstance(val, (int, float)) or isinstance(val, bool) or not 0.0 <= val <= 1.0:
                raise bad(name, f"must be a decay factor in [0, 1], got {val!r}")
        for name in ("lr", "theta", "surrogate_slope"):
            val = getattr(self, name)
            if not isinstance(val, (int, float)) or isinstance(val, bool) or not 0.0 < val < 1e6:
                raise bad(name, f"must be a positive number, got {val!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1):
            raise bad("limit", f"must be a positive integer, got {self.limit!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**63:
            raise bad("seed", f"must be a non-negative integer, got {self.seed!r}")
        for name in ("bias", "qat"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, f"must be true or false, got {getattr(self, name)!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise bad("data_dir", f"must be a folder name, got {self.data_dir!r}")
        self._validate_method(bad)
        self._validate_arch(bad)
        return self

    def _validate_arch(self, bad) -> None:
        if self.arch != "fc" and self.method not in ARCH_METHODS.get(self.arch, ()):
            raise bad("method", f"arch {self.arch!r} trains with methods {', '.join(ARCH_METHODS.get(self.arch, ()))}, "
                                f"got {self.method!r}")
        if not (isinstance(self.channels, list) and self.channels
                and all(isinstance(c, int) and not isinstance(c, bool) and 0 < c <= 4096 for c in self.channels)):
            raise bad("channels", f"must be a non-empty list of channel counts, got {self.channels!r}")
        for name, hi in (("kernel", 15), ("pool", 16)):
            val = getattr(self, name)
            if not isinstance(val, int) or isinstance(val, bool) or not 1 <= val <= hi:
                raise bad(name, f"must be an integer in [1, {hi}], got {val!r}")
        if self.pool_mode not in ("sum", "avg"):
            raise bad("pool_mode", f"must be 'sum' or 'avg', got {self.pool_mode!r}")

    def _validate_method(self, bad) -> None:
        """Ranges of the method-specific fields, and combinations a method cannot train."""
        def number(name: str, lo: float, hi: float, lo_open: bool = True, hi_open: bool = False) -> None:
            val = getattr(self, name)
            ok = isinstance(val, (int, float)) and not isinstance(val, bool) and \
                (val > lo if lo_open else val >= lo) and (val < hi if hi_open else val <= hi)
            if not ok:
                raise bad(name, f"must be a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
                          f"got {val!r}")

        def integer(name: str, lo: int, hi: int | None = None, what: str = "an integer") -> None:
            val = getattr(self, name)
            if not isinstance(val, int) or isinstance(val, bool) or val < lo or (hi is not None and val > hi):
                raise bad(name, f"must be {what} in [{lo}, {'inf' if hi is None else hi}], got {val!r}")

        number("klif_k_init", 0.0, 100.0)
        number("klif_k_lr", 0.0, 1e3, lo_open=False)
        if self.klif_floor not in ("all", "hidden"):
            raise bad("klif_floor", f"must be 'all' or 'hidden', got {self.klif_floor!r}")
        if not isinstance(self.augment_flip, bool):
            raise bad("augment_flip", f"must be true or false, got {self.augment_flip!r}")
        integer("augment_shift", 0, 8, "an integer number of pixels")
        number("tcn_momentum", 0.0, 1.0)
        integer("tcn_stat_batch", 0, what="a sample count (0: the whole batch)")
        number("seq_filter", 0.0, 1.0, hi_open=True)
        number("seq_min_rate", 0.0, 1.0, lo_open=False)
        number("seq_rate_weight", 0.0, 1e6, lo_open=False)
        number("keep_fraction", 0.0, 1.0)
        number("hnsg_gain", 0.0, 100.0)
        number("firate_smooth", 0.0, 10.0)
        integer("seq_period", 1)
        integer("seq_onset", 0)
        if self.method == "spikeseq" and self.population != 1:
            raise bad("population", "must be 1 for spikeseq (its readout compares every output neuron's train)")
        if self.method == "spikeseq" and self.seq_onset >= self.time_steps:
            raise bad("seq_onset", f"must be below time_steps ({self.time_steps}) so the target trains have spikes")
        if self.method in ("bpsrm", "hnsg") and self.bias:
            why = "temporal channel normalization's shift is the bias" if self.method == "bpsrm" else \
                "a hidden-network search learns no parameters but the synapse scores"
            raise bad("bias", f"must be false for method {self.method} ({why})")
        if self.method == "bpsrm" and self.beta_syn >= 1.0:
            raise bad("beta_syn", "must be below 1 for bpsrm (TCN's centring divides by 1 - beta_syn)")
        if self.method == "firate" and not (self.beta_syn < 1.0 and self.beta_mem > 0.0):
            raise bad("beta_syn", "firate needs beta_syn < 1 and beta_mem > 0 (a finite, smooth f-I curve)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any], source: str = "config") -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - names)
        if unknown:
            raise SpikeportError(f"{source}: unknown field(s) {', '.join(unknown)}")
        return cls(**obj).validate(source)

    @classmethod
    def from_toml(cls, path: str | Path) -> "TrainConfig":
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
        return cls.from_dict(section, source=str(path))
