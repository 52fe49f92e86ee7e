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

Worked example of energy.md (784->128, T=10, 10% input rate, all 1280 neuron updates active):
loihi 100352 * 23.6 pJ + 1280 * 81 pJ = 2.472 uJ; ann-fp32-45nm 100352 * 4.6 pJ = 0.462 uJ;
ann-fp32-45nm-mem 100352 * (4.6 + 24.5) pJ = 2.922 uJ (392 KiB of weights: 49.0 pJ per 64-bit
access, half of it per 32-bit weight); ann-int8-45nm-mem 100352 * (0.23 + 3.17) pJ = 0.341 uJ.
energy.md's "int8 0.34 uJ" is reproduced only WITH the weight reads: int8 compute alone
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

PACKAGED_PROFILES = Path(__file__).with_name("profiles.toml")
QUALITIES = ("silicon measurement", "pre-silicon estimate", "vendor documentation", "secondary table")
PRICE_NAMES = {"snn": ("synop", "neuron", "neuron_active", "neuron_inactive", "spike"),
               "ann": ("mac", "neuron")}
REQUIRED_PRICE = {"snn": "synop", "ann": "mac"}


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
class Profile:
    """A device: ``kind`` "snn" or "ann", its prices by name, and an optional weight-memory model."""

    name: str
    kind: str
    description: str
    prices: dict[str, Price]
    weight_memory: WeightMemory | None = None
    origin: str = ""


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


def estimate_energy(counts: dict, profiles: dict | None = None, names: list[str] | None = None) -> dict:
    """Price ``counts`` (from ``count_ops``) on each profile; joules per sample.

    Args:
        counts: the dict returned by :func:`spikeport.measure.ops.count_ops`.
        profiles: ``{name: Profile}``; default :func:`load_profiles`.
        names: profiles to price, default all.

    Returns:
        ``{"energy_j": {profile: J}, "breakdown": {profile: {term: J}}, "prices": {profile:
        {price: {"value_j", "source", "year", "quality", "note"}}}, "notes": [str]}``.
    """
    profiles = load_profiles() if profiles is None else profiles
    names = list(profiles) if names is None else list(names)
    unknown = [n for n in names if n not in profiles]
    if unknown:
        raise SpikeportError(f"unknown energy profile(s) {unknown}; known: {sorted(profiles)}")
    totals = counts.get("totals")
    if not isinstance(totals, dict):
        raise SpikeportError("estimate_energy: counts has no 'totals' (pass count_ops' result)")
    out = {"energy_j": {}, "breakdown": {}, "prices": {}, "notes": _notes(counts, profiles, names)}
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
    return out


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


# ---- reading and validating a profile file ---------------------------------------------------

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
    table = data.get("profiles")
    if not isinstance(table, dict) or not table:
        raise SpikeportError(f"{path}: no [profiles.NAME] tables")
    return {name: _parse_profile(path, name, body) for name, body in table.items()}


def _parse_profile(path: Path, name: str, body) -> Profile:
    key = f"profiles.{name}"
    if not isinstance(body, dict):
        raise SpikeportError(f"{path}: {key} must be a table")
    kind = body.get("kind")
    if kind not in PRICE_NAMES:
        raise SpikeportError(f"{path}: {key}.kind must be 'snn' or 'ann', got {kind!r}")
    prices_in = body.get("prices")
    if not isinstance(prices_in, dict):
        raise SpikeportError(f"{path}: {key}.prices is missing")
    prices = {}
    for pname, pbody in prices_in.items():
        if pname not in PRICE_NAMES[kind]:
            raise SpikeportError(f"{path}: {key}.prices.{pname}: unknown price for kind "
                                 f"{kind!r} (allowed: {', '.join(PRICE_NAMES[kind])})")
        prices[pname] = _parse_price(path, f"{key}.prices.{pname}", pbody)
    if REQUIRED_PRICE[kind] not in prices:
        raise SpikeportError(f"{path}: {key}.prices.{REQUIRED_PRICE[kind]} is missing")
    split = ("neuron_active" in prices) + ("neuron_inactive" in prices)
    if split == 1 or (split == 2 and "neuron" in prices):
        raise SpikeportError(f"{path}: {key}.prices: give either 'neuron' or both "
                             "'neuron_active' and 'neuron_inactive'")
    memory = None
    if "weight_memory" in body:
        if kind != "ann":
            raise SpikeportError(f"{path}: {key}.weight_memory is only for kind = 'ann'")
        memory = _parse_memory(path, f"{key}.weight_memory", body["weight_memory"])
    return Profile(name=name, kind=kind, description=str(body.get("description", "")),
                   prices=prices, weight_memory=memory, origin=str(path))


def _parse_price(path: Path, key: str, body, need_value: bool = True) -> Price:
    if not isinstance(body, dict):
        raise SpikeportError(f"{path}: {key} must be a table with value_j and source")
    value = body.get("value_j")
    if need_value:
        _positive(path, f"{key}.value_j", value)
    source = body.get("source")
    if not isinstance(source, str) or not source.strip():
        raise SpikeportError(f"{path}: {key}.source is missing (every price needs its source)")
    year = body.get("year")
    if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
        raise SpikeportError(f"{path}: {key}.year must be an integer, got {year!r}")
    quality = body.get("quality", "unstated")
    if quality != "unstated" and quality not in QUALITIES:
        raise SpikeportError(f"{path}: {key}.quality must be one of {list(QUALITIES)}, got {quality!r}")
    return Price(value_j=float(value) if need_value else math.nan, source=source.strip(), year=year,
                 quality=quality, note=str(body.get("note", "")))


def _parse_memory(path: Path, key: str, body) -> WeightMemory:
    price = _parse_price(path, key, body, need_value=False)
    for field in ("weight_bits", "access_bits", "dram_j_per_access"):
        _positive(path, f"{key}.{field}", body.get(field))
    sizes, energies = body.get("sram_kib"), body.get("sram_j_per_access")
    if not isinstance(sizes, list) or not isinstance(energies, list) or not sizes \
            or len(sizes) != len(energies):
        raise SpikeportError(f"{path}: {key}: sram_kib and sram_j_per_access must be lists "
                             "of the same, nonzero length")
    for i, (s, e) in enumerate(zip(sizes, energies)):
        _positive(path, f"{key}.sram_kib[{i}]", s)
        _positive(path, f"{key}.sram_j_per_access[{i}]", e)
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise SpikeportError(f"{path}: {key}.sram_kib must increase")
    return WeightMemory(weight_bits=int(body["weight_bits"]), access_bits=int(body["access_bits"]),
                        sram_kib=tuple(float(s) for s in sizes),
                        sram_j_per_access=tuple(float(e) for e in energies),
                        dram_j_per_access=float(body["dram_j_per_access"]), price=price)


def _positive(path: Path, key: str, value) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise SpikeportError(f"{path}: {key} must be a positive finite number, got {value!r}")
