"""The schema of an energy profile file (``profiles.toml``), as pydantic v2 models.

Types, ranges and unknown keys are checked here; :func:`validate_profile_file` turns the first
problem into ONE line naming the file and the dotted field (``profiles.NAME.prices.synop.value_j``).
The models describe the TOML as written; :mod:`spikeport.measure.energy` turns them into its own
frozen dataclasses.

Units: ``value_j`` joules per operation (float); ``value_w`` watts (float); ``step_rate_hz`` time
steps per second (float); ``sram_kib`` KiB; ``*_bits`` bits (int).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from spikeport.errors import SpikeportError
from spikeport.files.schema import StrictModel

QUALITIES = ("silicon measurement", "pre-silicon estimate", "vendor documentation", "secondary table")
Quality = Literal["unstated", "silicon measurement", "pre-silicon estimate", "vendor documentation",
                  "secondary table"]
VALIDATION_STATUS = ("validated", "calibrated", "not reproduced", "not validated")


def _finite_positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive finite number")
    return value


class _Strict(StrictModel):
    """The config-file base (:class:`spikeport.files.schema.StrictModel`), immutable."""

    model_config = ConfigDict(**StrictModel.model_config, frozen=True)


class Provenance(_Strict):
    """Where a figure comes from: ``source`` (required), ``year``, ``quality``, ``note``."""

    source: Annotated[str, Field(min_length=1)]
    year: Optional[int] = None
    quality: Quality = "unstated"
    note: str = ""

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is missing (every price needs its source)")
        return value.strip()


Positive = Annotated[float, AfterValidator(_finite_positive)]  # > 0 and finite


class PriceModel(Provenance):
    """Joules per operation (float, > 0) with provenance."""

    value_j: Positive


class PowerModel(Provenance):
    """Watts (float, > 0) with provenance: a board- or chip-level power term."""

    value_w: Positive


class OverheadModel(_Strict):
    """Terms a per-operation table leaves out, each labelled with its own source.

    Per sample of ``T`` steps at ``step_rate_hz``: ``static_power * T / rate`` (idle draw while the
    inference runs), ``host_power * T / rate`` (management/host cores kept busy by a run), and
    ``step_energy_per_core * T * active_cores`` (per-time-step synchronisation of each used core).
    """

    step_rate_hz: float
    step_rate_source: Annotated[str, Field(min_length=1)]
    static_power: Optional[PowerModel] = None
    host_power: Optional[PowerModel] = None
    step_energy_per_core: Optional[PriceModel] = None

    @field_validator("step_rate_hz")
    @classmethod
    def _positive_rate(cls, value):
        return _finite_positive(float(value))


class ValidationModel(_Strict):
    """How a profile compares with a measured whole network (docs/energy_validation.md)."""

    status: Literal["validated", "calibrated", "not reproduced", "not validated"]
    summary: Annotated[str, Field(min_length=1)]
    reference: str = ""
    ratio: Optional[float] = None  # estimate / measurement of the row the summary quotes

    @field_validator("ratio")
    @classmethod
    def _positive_ratio(cls, value):
        return value if value is None else _finite_positive(float(value))


class SnnPrices(_Strict):
    synop: PriceModel
    neuron: Optional[PriceModel] = None
    neuron_active: Optional[PriceModel] = None
    neuron_inactive: Optional[PriceModel] = None
    spike: Optional[PriceModel] = None

    @model_validator(mode="after")
    def _neuron_split(self):
        split = (self.neuron_active is not None) + (self.neuron_inactive is not None)
        if split == 1 or (split == 2 and self.neuron is not None):
            raise ValueError("give either 'neuron' or both 'neuron_active' and 'neuron_inactive'")
        return self


class AnnPrices(_Strict):
    mac: PriceModel
    neuron: Optional[PriceModel] = None


class WeightMemoryModel(Provenance):
    """One weight read per MAC from an SRAM sized to the layer (ann profiles only)."""

    weight_bits: Annotated[int, Field(gt=0)]
    access_bits: Annotated[int, Field(gt=0)]
    sram_kib: Annotated[list[float], Field(min_length=1)]
    sram_j_per_access: Annotated[list[float], Field(min_length=1)]
    dram_j_per_access: float

    @field_validator("dram_j_per_access")
    @classmethod
    def _positive_dram(cls, value):
        return _finite_positive(float(value))

    @field_validator("sram_kib", "sram_j_per_access")
    @classmethod
    def _each_positive(cls, values: list) -> list:
        return [_finite_positive(float(v)) for v in values]

    @model_validator(mode="after")
    def _lists(self):
        if len(self.sram_kib) != len(self.sram_j_per_access):
            raise ValueError("sram_kib and sram_j_per_access must have the same length")
        if any(b <= a for a, b in zip(self.sram_kib, self.sram_kib[1:])):
            raise ValueError("sram_kib must increase")
        return self


class _ProfileBase(_Strict):
    description: str = ""
    overhead: Optional[OverheadModel] = None
    validation: Optional[ValidationModel] = None


class SnnProfile(_ProfileBase):
    kind: Literal["snn"]
    prices: SnnPrices


class AnnProfile(_ProfileBase):
    kind: Literal["ann"]
    prices: AnnPrices
    weight_memory: Optional[WeightMemoryModel] = None


ProfileModel = Annotated[Union[SnnProfile, AnnProfile], Field(discriminator="kind")]


class ProfileFile(_Strict):
    """The whole file: ``[profiles.NAME]`` tables (at least one) and optional ``notes``."""

    profiles: Annotated[dict[str, ProfileModel], Field(min_length=1)]
    notes: list[str] = []


def validate_profile_file(path: Path, data: dict) -> ProfileFile:
    """``data`` (parsed TOML of ``path``) as a :class:`ProfileFile`.

    Raises:
        SpikeportError: one line, ``"{path}: {dotted.field}: {problem}"``, for the first problem.
    """
    try:
        return ProfileFile.model_validate(data)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        # An unknown key usually explains the rest (a misspelt price also leaves the real one missing).
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        raise SpikeportError(f"{path}: {_where(first)}: {_what(first)}") from None


def _where(error: dict) -> str:
    """Dotted location, without pydantic's union tag (``profiles.x.snn.prices`` -> ``profiles.x.prices``)."""
    loc = [str(part) for part in error["loc"]]
    if len(loc) >= 3 and loc[0] == "profiles" and loc[2] in ("snn", "ann"):
        del loc[2]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("kind")
    return ".".join(loc) or "(file)"


def _what(error: dict) -> str:
    kind, msg = error["type"], error["msg"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        got = error.get("ctx", {}).get("tag")
        return f"must be 'snn' or 'ann', got {got!r}" if got is not None else "is missing ('snn' or 'ann')"
    if kind == "extra_forbidden":
        return "unknown key (not in the profile schema; see the header of profiles.toml)"
    if kind == "missing":
        return "is missing"
    return f"{msg.removeprefix('Value error, ')} (got {error.get('input')!r})"
