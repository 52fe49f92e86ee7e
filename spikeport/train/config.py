"""Training configuration: one dataclass, written to and read from ``config.json`` (validated)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikeport.data import DATASETS, ENCODERS
from spikeport.errors import SpikeportError

METHODS = ("lif",)
ARCHS = ("fc",)
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
        for name in ("time_steps", "epochs", "batch_size"):
            val = getattr(self, name)
            if not isinstance(val, int) or isinstance(val, bool) or val < 1 or val > 100_000:
                raise bad(name, f"must be a positive integer, got {val!r}")
        if not (isinstance(self.hidden, list) and all(isinstance(h, int) and 0 < h <= 65536 for h in self.hidden)):
            raise bad("hidden", f"must be a list of positive layer sizes, got {self.hidden!r}")
        for name in ("beta_syn", "beta_mem"):
            val = getattr(self, name)
            if not isinstance(val, (int, float)) or not 0.0 <= val <= 1.0:
                raise bad(name, f"must be a decay factor in [0, 1], got {val!r}")
        for name in ("lr", "theta", "surrogate_slope"):
            val = getattr(self, name)
            if not isinstance(val, (int, float)) or not 0.0 < val < 1e6:
                raise bad(name, f"must be a positive number, got {val!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise bad("limit", f"must be a positive integer, got {self.limit!r}")
        return self

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
        try:
            obj = tomli.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpikeportError(f"{path}: file not found") from None
        except (tomli.TOMLDecodeError, UnicodeDecodeError) as err:
            raise SpikeportError(f"{path}: not valid TOML ({err})") from None
        return cls.from_dict(obj.get("train", obj), source=str(path))
