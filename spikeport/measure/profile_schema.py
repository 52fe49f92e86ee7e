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
VALIDATION_STATUS = ("validated", "calibrated", "not reproduced", "not validated")  # best first
ESTIMATES = ("per-op", "system")  # the two estimates a row can check (EvidenceRow.estimate)
WITHIN = (0.5, 2.0)  # "within 2x": estimate / measured in this closed range
MIN_INDEPENDENT = 2  # measurements within 2x, none fitted, for "validated"


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


class EvidenceRow(_Strict):
    """One comparison of the profile's estimate with a measured whole network, J per inference (float).

    ``estimate``: which estimate it checks: ``per-op`` (the per-operation prices alone: the core's dynamic
    energy) or ``system`` (per-op plus the profile's ``overhead`` terms). ``fitted``: a term of the
    estimate was taken from this same measurement (an in-sample fit, not an independent check).
    """

    estimate: Literal["per-op", "system"]
    measurement: Annotated[str, Field(min_length=1)]
    measured_j: Positive
    estimate_j: Positive
    fitted: bool = False
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.estimate_j / self.measured_j

    @property
    def within_2x(self) -> bool:
        return WITHIN[0] <= self.ratio <= WITHIN[1]


class ValidationModel(_Strict):
    """How a profile compares with measured whole networks (docs/energy_validation.md).

    ``status`` is checked against ``rows`` (see :func:`derived_status`): "validated" needs at least
    :data:`MIN_INDEPENDENT` measurements within 2x that the estimate was not fitted to, "calibrated" a
    row within 2x on a measurement the estimate was fitted to (and not validated), "not reproduced" rows
    and neither, "not validated" no row at all. Each of the two estimates gets its own status
    (:func:`column_status`); the profile's is the better of the two.
    """

    status: Literal["validated", "calibrated", "not reproduced", "not validated"]
    summary: Annotated[str, Field(min_length=1)]
    reference: str = ""
    rows: list[EvidenceRow] = []
    ratio: Optional[float] = None  # no longer read: refused below, the ratios come from the rows

    @field_validator("ratio")
    @classmethod
    def _ratio_from_rows(cls, value):
        if value is None:
            return value
        raise ValueError("is no longer read: give the measured rows ([[profiles.NAME.validation.rows]] with "
                         "estimate, measurement, measured_j, estimate_j); each ratio is computed from them")

    @model_validator(mode="after")
    def _status_from_rows(self):
        derived = derived_status(self.rows)
        if self.status != derived:
            raise ValueError(f"status {self.status!r} is not what the rows show: {_needs(self.status)}; the "
                             f"{len(self.rows)} row(s) give {derived!r} ({evidence_label(self.rows)})")
        return self


def column_status(rows: list[EvidenceRow], column: str) -> str:
    """Status of one estimate (``per-op`` or ``system``) from its rows (see :class:`ValidationModel`)."""
    mine = [r for r in rows if r.estimate == column]
    within = [r for r in mine if r.within_2x]
    independent = {r.measurement for r in within if not r.fitted}
    if not mine:
        return "not validated"
    if len(independent) >= MIN_INDEPENDENT:
        return "validated"
    return "calibrated" if any(r.fitted for r in within) else "not reproduced"


def derived_status(rows: list[EvidenceRow]) -> str:
    """The profile's status: the better of its two estimates' (:data:`VALIDATION_STATUS` is best first)."""
    return min((column_status(rows, c) for c in ESTIMATES), key=VALIDATION_STATUS.index)


def column_label(rows: list[EvidenceRow], column: str) -> str:
    """``status (what the rows show)`` for one estimate, e.g. ``not reproduced (1 of 6 within 2x)``."""
    return f"{column_status(rows, column)} ({evidence_label([r for r in rows if r.estimate == column])})"


def evidence_label(rows: list[EvidenceRow]) -> str:
    """What rows show: ``fitted 0.912x; 1 of 2 others within 2x``, ``1 of 6 within 2x`` or ``no comparison``."""
    if not rows:
        return "no comparison"
    fitted, free = [r for r in rows if r.fitted], [r for r in rows if not r.fitted]
    parts = ["fitted " + ", ".join(f"{r.ratio:.3g}x" for r in fitted)] if fitted else []
    if free:
        within = [r for r in free if r.within_2x]
        distinct = len({r.measurement for r in within})
        parts.append(f"{len(within)} of {len(free)} {'others ' if fitted else ''}within 2x"
                     + (f", from {distinct} measurement(s)" if distinct < len(within) else ""))
    return "; ".join(parts)


def _needs(status: str) -> str:
    return {"validated": f"'validated' needs >= {MIN_INDEPENDENT} measured rows within 2x (estimate_j / measured_j "
                         "in [0.5, 2]) from different measurements, none fitted to its measurement",
            "calibrated": "'calibrated' needs a measured row within 2x and fewer than "
                          f"{MIN_INDEPENDENT} independent ones",
            "not reproduced": "'not reproduced' needs measured rows, none of which qualifies for better",
            "not validated": "'not validated' means no measured row"}[status]


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

    @model_validator(mode="after")
    def _system_rows_need_overhead(self):
        if self.overhead is None and self.validation is not None and any(
                r.estimate == "system" for r in self.validation.rows):
            raise ValueError("validation.rows: an estimate = 'system' row needs the profile's [overhead] terms "
                             "(the system estimate is per-op plus them)")
        return self


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
    got = error.get("input")
    return msg.removeprefix("Value error, ") + ("" if isinstance(got, (dict, list)) else f" (got {got!r})")
