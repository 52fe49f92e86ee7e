"""Energy per sample from operation counts and per-operation device prices.

Prices live in ``profiles.toml`` beside this file (each with its source, year and how solid it is);
a user file with the same schema can add or replace profiles. Energies are joules PER SAMPLE, as
the counts from :func:`spikeport.measure.ops.count_ops` are.

Pricing rules:

- ``kind = "snn"``: ``synops * synop + effective_macs * synop`` (graded input events priced as
  synops: an assumption, said in the notes) plus neuron updates: ``neuron_active`` /
  ``neuron_inactive`` when the profile has both, else ``neuron`` for every update, else nothing
  (an all-in synop price); plus ``spikes_out * spike`` when the profile prices spikes.
- ``kind = "ann"``: ``dense_macs * mac`` (the equivalent ANN evaluated once per sample), plus
  ``ann_neuron_updates * neuron`` when priced, plus one weight read per MAC when the profile has a
  ``weight_memory`` model (see :func:`_weight_read_j`).

Two estimates, never mixed (``COLUMNS``): the **per-op** estimate ``energy_j`` (the per-operation
prices alone: the core's dynamic energy) and, for a profile with labelled ``overhead`` terms that
per-op tables leave out (idle and host power at a stated time-step rate, energy per step per active
core; :func:`overhead_terms`), the **system** estimate ``energy_j_with_overhead``. A profile's
``validation`` entry lists its comparisons with measured whole networks (docs/energy_validation.md),
each marked with the estimate it checks; each estimate's status comes from its own rows
(:func:`validation`), so "calibrated" or "validated" appears only beside the estimate whose rows say
so. Profiles without an entry are "not validated". The file is checked by
:mod:`spikeport.measure.profile_schema`.

Worked example (784->128, T=10, 10% input rate, all 1280 neuron updates active; Davies et al. 2018 and
Horowitz 2014 prices):
loihi 100352 * 23.6 pJ + 1280 * 81 pJ = 2.472 uJ; ann-fp32-45nm 100352 * 4.6 pJ = 0.462 uJ;
ann-fp32-45nm-mem 100352 * (4.6 + 24.5) pJ = 2.922 uJ (392 KiB of weights: 49.0 pJ per 64-bit
access, half of it per 32-bit weight); ann-int8-45nm-mem 100352 * (0.23 + 3.17) pJ = 0.341 uJ.
The int8 figure of 0.34 uJ holds only WITH the weight reads: int8 compute alone
(ann-int8-45nm) is 100352 * 0.23 pJ = 0.023 uJ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from spikeport.errors import SpikeportError
from spikeport.measure import profile_schema as schema

PACKAGED_PROFILES = Path(__file__).with_name("profiles.toml")
QUALITIES = schema.QUALITIES
PRICE_NAMES = {"snn": ("synop", "neuron", "neuron_active", "neuron_inactive", "spike"),
               "ann": ("mac", "neuron")}
# Terms a per-op table leaves out (see OverheadModel): power terms are W, the per-core one J/step.
OVERHEAD_TERMS = ("static_power", "host_power", "step_energy_per_core")
NOT_VALIDATED = {"status": "not validated", "summary": "not validated against a measured whole network",
                 "reference": "", "rows": []}
# The two estimates, as energy.json labels them ("columns") and the reports head them.
COLUMNS = {"energy_j": "per-op estimate (core dynamic): counted operations x the profile's per-operation prices",
           "energy_j_with_overhead": "system estimate: per-op + the profile's labelled idle (static) and host power "
                                     "x time per sample at its stated step rate (+ step energy per core if given)"}


@dataclass(frozen=True)
class Price:
    """One price: ``value_j`` joules per operation (float), with provenance."""

    value_j: float
    source: str
    year: int | None = None
    quality: str = "unstated"
    note: str = ""


@dataclass(frozen=True)
class WeightMemory:
    """One weight read per MAC: SRAM access energy (J per ``access_bits`` access) vs size (KiB)."""

    weight_bits: int
    access_bits: int
    sram_kib: tuple[float, ...]
    sram_j_per_access: tuple[float, ...]
    dram_j_per_access: float
    price: Price  # provenance; its value_j is unused (the read energy depends on layer size)


@dataclass(frozen=True)
class Overhead:
    """Labelled terms beside the per-op prices, at a stated time-step rate (steps per second).

    ``terms``: ``static_power`` / ``host_power`` (``value_j`` holds WATTS for these two) and
    ``step_energy_per_core`` (joules per time step per active core).
    """

    step_rate_hz: float
    step_rate_source: str
    terms: dict[str, Price]


@dataclass(frozen=True)
class Profile:
    """A device: ``kind`` "snn" or "ann", its prices by name, and optional weight-memory model,
    overhead terms and validation status (``{"status", "summary", "reference", "ratio"}``)."""

    name: str
    kind: str
    description: str
    prices: dict[str, Price]
    weight_memory: WeightMemory | None = None
    origin: str = ""
    overhead: Overhead | None = None
    validation: dict | None = None


def load_profiles(extra: str | Path | None = None) -> dict[str, Profile]:
    """Read the packaged profiles, then ``extra`` (same schema) whose profiles add or replace them.

    Raises:
        SpikeportError: naming the file and key of the first problem (missing or non-positive
            price, missing source, unknown price name or quality, unreadable TOML).
    """
    profiles = _read_file(PACKAGED_PROFILES)
    if extra is not None:
        profiles.update(_read_file(Path(extra)))
    return profiles


def profile_notes() -> list[str]:
    """The general notes of the packaged profile file (e.g. that Loihi 2 has no public figures)."""
    with open(PACKAGED_PROFILES, "rb") as fh:
        return list(tomllib.load(fh).get("notes", []))


def estimate_energy(counts: dict, profiles: dict | None = None, names: list[str] | None = None,
                    active_cores: int | None = None) -> dict:
    """Price ``counts`` (from ``count_ops``) on each profile; joules per sample.

    Args:
        counts: the dict returned by :func:`spikeport.measure.ops.count_ops`.
        profiles: ``{name: Profile}``; default :func:`load_profiles`.
        names: profiles to price, default all.
        active_cores: cores the network occupies (int), for a ``step_energy_per_core`` term.

    Returns:
        ``{"energy_j": {profile: J} (per-op terms only), "breakdown": {profile: {term: J}},
        "prices": {profile: {price: {"value_j", "source", "year", "quality", "note"}}},
        "overhead_j": {profile: {term: J}}, "energy_j_with_overhead": {profile: J},
        "overhead_basis": {profile: str} (the last three only for profiles with overhead terms and
        counts that give ``time_steps``), "columns": {"energy_j": label, "energy_j_with_overhead": label}
        (the per-op and the system estimate), "validation": {profile: :func:`validation`}, "notes": [str]}``.
    """
    profiles = load_profiles() if profiles is None else profiles
    names = list(profiles) if names is None else list(names)
    unknown = [n for n in names if n not in profiles]
    if unknown:
        raise SpikeportError(f"unknown energy profile(s) {unknown}; known: {sorted(profiles)}")
    totals = counts.get("totals")
    if not isinstance(totals, dict):
        raise SpikeportError("estimate_energy: counts has no 'totals' (pass count_ops' result)")
    out = {"energy_j": {}, "breakdown": {}, "prices": {}, "overhead_j": {}, "energy_j_with_overhead": {},
           "overhead_basis": {}, "columns": dict(COLUMNS), "validation": {n: validation(profiles[n]) for n in names},
           "notes": _notes(counts, profiles, names)}
    for name in names:
        prof = profiles[name]
        terms = _snn_terms(prof, totals) if prof.kind == "snn" else _ann_terms(prof, totals)
        prices = {k: _price_dict(p) for k, p in prof.prices.items()}
        if prof.weight_memory is not None:
            read_j, detail = _weight_reads(prof.weight_memory, counts)
            terms["weight_reads"] = read_j
            per_mac = read_j / totals["dense_macs"] if totals["dense_macs"] else 0.0
            prices["weight_read"] = {**_price_dict(prof.weight_memory.price), "value_j": per_mac,
                                     "note": f"{prof.weight_memory.price.note} This run: {detail}."}
        out["breakdown"][name] = terms
        out["energy_j"][name] = float(sum(terms.values()))
        out["prices"][name] = prices
        steps = counts.get("time_steps")
        if prof.overhead is not None and steps:
            terms, basis = overhead_terms(prof.overhead, int(steps), active_cores)
            out["overhead_j"][name] = terms
            out["energy_j_with_overhead"][name] = out["energy_j"][name] + float(sum(terms.values()))
            out["overhead_basis"][name] = basis
    return out


def validation(prof: Profile) -> dict:
    """A profile's validation entry with what its rows show, per estimate: ``{"status", "summary",
    "reference", "rows": [row + "ratio", "within_2x"], "per_op": {"status", "label"}, "system": {"status",
    "label"} or None (no overhead terms, so no system estimate)}``. The status of each estimate comes from
    its own rows (:func:`spikeport.measure.profile_schema.column_status`), never from the profile's."""
    entry = dict(prof.validation or NOT_VALIDATED)
    rows = [schema.EvidenceRow(**r) for r in entry.get("rows", [])]
    entry["rows"] = [{**r.model_dump(), "ratio": r.ratio, "within_2x": r.within_2x} for r in rows]
    for column, key in (("per-op", "per_op"), ("system", "system")):
        entry[key] = {"status": schema.column_status(rows, column), "label": schema.column_label(rows, column)}
    if prof.overhead is None:
        entry["system"] = None
    return entry


def overhead_terms(overhead: Overhead, steps: int, active_cores: int | None = None) -> tuple[dict, str]:
    """Joules per sample of each labelled overhead term for ``steps`` time steps, and the basis.

    ``static_power`` and ``host_power`` (W) x ``steps / step_rate_hz`` (s per sample);
    ``step_energy_per_core`` (J) x ``steps x active_cores`` (left out, and said so, without cores).
    """
    seconds = steps / overhead.step_rate_hz
    terms = {}
    for key in ("static_power", "host_power"):
        if key in overhead.terms:
            terms[key] = overhead.terms[key].value_j * seconds
    basis = (f"{steps} steps at {overhead.step_rate_hz:g} steps/s ({seconds * 1e3:.4g} ms per sample; "
             f"rate: {overhead.step_rate_source})")
    if "step_energy_per_core" in overhead.terms:
        if active_cores:
            terms["step_energy_per_core"] = overhead.terms["step_energy_per_core"].value_j * steps * active_cores
            basis += f"; {active_cores} active cores"
        else:
            basis += "; per-core step energy left out (core count unknown)"
    return terms, basis


def _snn_terms(prof: Profile, totals: dict) -> dict[str, float]:
    p = prof.prices
    terms = {"synops": totals["synops"] * p["synop"].value_j,
             "effective_macs": totals["effective_macs"] * p["synop"].value_j}
    if "neuron_active" in p:
        terms["neuron_updates_active"] = totals["neuron_updates_active"] * p["neuron_active"].value_j
        terms["neuron_updates_inactive"] = (totals["neuron_updates_inactive"]
                                            * p["neuron_inactive"].value_j)
    elif "neuron" in p:
        terms["neuron_updates"] = totals["neuron_updates"] * p["neuron"].value_j
    if "spike" in p:
        terms["spikes_out"] = totals["spikes_out"] * p["spike"].value_j
    return terms


def _ann_terms(prof: Profile, totals: dict) -> dict[str, float]:
    terms = {"dense_macs": totals["dense_macs"] * prof.prices["mac"].value_j}
    if "neuron" in prof.prices:
        terms["ann_neuron_updates"] = totals["ann_neuron_updates"] * prof.prices["neuron"].value_j
    return terms


def _weight_reads(mem: WeightMemory, counts: dict) -> tuple[float, str]:
    """Joules per sample of one weight read per dense MAC, each layer from its own sized SRAM."""
    total, parts = 0.0, []
    for layer in counts["layers"]:
        kib = layer["dense_weights"] * mem.weight_bits / 8 / 1024
        per_read = _weight_read_j(mem, kib)
        total += layer["dense_macs"] * per_read
        parts.append(f"{layer['name']}: {kib:.4g} KiB, {per_read * 1e12:.4g} pJ per weight")
    return total, "; ".join(parts)


def _weight_read_j(mem: WeightMemory, kib: float) -> float:
    """Energy (J) of reading one weight of ``weight_bits`` from a store of ``kib`` KiB.

    The access energy is interpolated linearly in size between the SRAM points (the smallest
    point's energy below it); past the largest SRAM the weights are in DRAM. One weight costs
    ``weight_bits / access_bits`` of an access (weights packed in the access width).
    """
    if kib > mem.sram_kib[-1]:
        access = mem.dram_j_per_access
    else:
        access = float(np.interp(kib, mem.sram_kib, mem.sram_j_per_access))
    return access * mem.weight_bits / mem.access_bits


def _notes(counts: dict, profiles: dict, names: list[str]) -> list[str]:
    notes = ["Energies are joules per sample (counts summed over the batch and divided by it).",
             "ANN profiles price the same layers as a dense ANN evaluated once per sample "
             "(n_in x n_out MACs per layer), not once per time step."]
    if counts["totals"].get("effective_macs", 0) and any(profiles[n].kind == "snn" for n in names):
        notes.append("Assumption: graded input events (effective MACs) are priced at the synop "
                     "price of each SNN profile; a graded multiply-accumulate may cost more.")
    return notes + profile_notes()


def _price_dict(p: Price) -> dict:
    return {"value_j": p.value_j, "source": p.source, "year": p.year, "quality": p.quality,
            "note": p.note}


# ---- reading a profile file (validated by the pydantic schema) --------------------------------

def _read_file(path: Path) -> dict[str, Profile]:
    from spikeport.files.fileio import refuse_pickle

    refuse_pickle(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SpikeportError(f"{path}: profile file not found") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpikeportError(f"{path}: not a readable TOML profile file ({err})") from None
    parsed = schema.validate_profile_file(path, data)
    return {name: _profile(path, name, body) for name, body in parsed.profiles.items()}


def _profile(path: Path, name: str, body) -> Profile:
    prices = {k: _price(v) for k, v in body.prices.model_dump(exclude_none=True).items()}
    memory = None
    if getattr(body, "weight_memory", None) is not None:
        m = body.weight_memory
        memory = WeightMemory(weight_bits=m.weight_bits, access_bits=m.access_bits,
                              sram_kib=tuple(m.sram_kib), sram_j_per_access=tuple(m.sram_j_per_access),
                              dram_j_per_access=m.dram_j_per_access,
                              price=Price(math.nan, m.source, m.year, m.quality, m.note))
    overhead = None
    if body.overhead is not None:
        o = body.overhead
        overhead = Overhead(step_rate_hz=o.step_rate_hz, step_rate_source=o.step_rate_source,
                            terms={k: _price(getattr(o, k).model_dump()) for k in OVERHEAD_TERMS
                                   if getattr(o, k) is not None})
    validation = body.validation.model_dump() if body.validation is not None else None
    return Profile(name=name, kind=body.kind, description=body.description, prices=prices,
                   weight_memory=memory, origin=str(path), overhead=overhead, validation=validation)


def _price(d: dict) -> Price:
    """A Price from a validated price or power table (``value_j`` or ``value_w``)."""
    value = d["value_j"] if "value_j" in d else d["value_w"]
    return Price(value_j=float(value), source=d["source"], year=d.get("year"),
                 quality=d.get("quality", "unstated"), note=d.get("note", ""))
