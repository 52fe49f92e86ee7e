"""`make verify`: every headline figure of README.md and docs/, regenerated from the repository's scripts
and compared with the figure the doc prints. Fails (exit 1) on a figure that is stale (outside its
tolerance), missing from its doc, or that its script no longer produces.

    PYTHONPATH=$PWD python benchmarks/claims.py                  # regenerate all, compare, exit 0 / 1
    python benchmarks/claims.py --list                           # the registry: figure, doc, tolerance, reduction
    python benchmarks/claims.py --only energy netx_reset         # some groups
    python benchmarks/claims.py --save values.json               # keep the regenerated values ...
    python benchmarks/claims.py --values values.json             # ... and compare again without rerunning
    python benchmarks/claims.py --root /tmp/copy                 # compare the docs of another checkout

**The registry.** ``CLAIMS`` holds one :class:`Claim` per printed figure: the doc (relative to the repo
root), a regular expression whose first group captures the number as printed (thousands commas allowed),
the GROUP that regenerates it and the KEY of the figure in that group's result, a tolerance (``tol``
absolute in the printed unit, ``rel`` relative to the printed value; both below 10 % of the figure, which
``tests/test_claims.py`` checks by editing every figure of a copy of its doc by 10 %) and, where the
script runs less than the doc's full measurement, the ``reduction`` in words (the doc then prints the
reduced figure too, beside the full one, and that is what is compared). ``count`` is how often the
pattern occurs in the doc (each occurrence is compared).

``GROUPS`` maps a group name to a function ``() -> {key: value}`` (in benchmarks/claim_groups.py) that
regenerates a set of figures in one run (one training feeds several figures) and a stated cost. A group that raises makes each of its
figures UNREPRODUCIBLE.

**Adding a figure** (one entry; a new group only for a new script):

    Claim("results.lif.int_acc", "docs/results.md", r"`examples/lif_fmnist.toml` \\| [^|]* \\| ([\\d.]+) \\|",
          group="fmnist", key="lif_fmnist.int_acc", tol=1.0,
          reduction="10,000 training images, 1 epoch (docs/results.md prints the reduced row)"),

then ``python benchmarks/claims.py --only fmnist`` and ``pytest tests/test_claims.py``. Keep ``make verify``
within 40 minutes on 2 cores (it prints each group's time); a figure too expensive to regenerate gets a
stated reduction printed in its doc, or leaves the doc. What counts as headline, and what is left out
(timings, which depend on the machine; figures a slow test or another environment holds): the
"Registry" section of docs/setup.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Claim:
    """One printed figure: where it is, what regenerates it, how close it must be."""

    name: str
    doc: str
    pattern: str
    group: str
    key: str
    tol: float = 0.0
    rel: float = 0.0
    reduction: str = ""
    count: int = 1

    def allowed(self, printed: float) -> float:
        return max(self.tol, self.rel * abs(printed))


_spec = importlib.util.spec_from_file_location("claim_groups", ROOT / "benchmarks" / "claim_groups.py")
G = sys.modules.setdefault("claim_groups", importlib.util.module_from_spec(_spec))  # the figures' functions
if not hasattr(G, "_module"):
    _spec.loader.exec_module(G)
_module = G._module  # a script of benchmarks/ as a module (registered, so that its dataclasses resolve)
GROUPS: dict[str, tuple[Callable[[], dict[str, float]], str]] = {
    "energy": (G.energy_figures, "~2 s"),
    "netx_reset": (G.netx_reset_figures, "~30 s"),
    "demo": (G.demo_figures, "~4 min"),
    "fuzz": (G.fuzz_figures, "~2 min"),
    "peers_export": (G.peers_export_figures, "~1 min"),
    "netx_targets": (G.netx_targets_figures, "~10 min"),
    "fmnist": (G.fmnist_figures, "~15 min"),
}


# ---- the registry -----------------------------------------------------------------------------------------

EV, NETX, RESULTS, REL = "docs/energy_validation.md", "docs/netx.md", "docs/results.md", "docs/reliability.md"
PCT = r"([\d.]+)"


def _energy_claims() -> list[Claim]:
    """energy_validation.md's "Result in short" and "Reading the tables": the ratios its prose quotes (the
    generated tables themselves are held to the script by tests/test_energy_validation.py)."""
    prose = [("blouw.per_op", r"the per-operation table gives ([\d.]+)x of the"),
             ("blouw.host", r"~70 mW host term brings it to ([\d.]+)x"),
             ("blouw.system", r"and 70 mW host power\) at ([\d.]+)x of its idle"),
             ("braille.system", r"power\): ([\d.]+)x braille \(within 2x\)"),
             ("lsnn.system", r"braille \(within 2x\), ([\d.]+)x sMNIST LSNN \(not within 2x\)\. One"),
             ("ntidigits.host", r"it gives ([\d.]+)x \(N-TIDIGITS\)"),
             ("braille.host", r"\(N-TIDIGITS\), ([\d.]+)x \(braille\) and"),
             ("lsnn.host", r"\(braille\) and ([\d.]+)x \(sMNIST LSNN\)"),
             ("ntidigits.per_op", r"tick; no source publishes one\): ([\d.]+)x N-TIDIGITS \(not within 2x\)"),
             ("braille.per_op", r"\(not within 2x\), ([\d.]+)x braille \(within 2x\) and"),
             ("lsnn.per_op", r"\(within 2x\) and ([\d.]+)x sMNIST LSNN \(not within 2x\)\. The LSNN"),
             ("lsnn.cores", r"the per-op estimate is ([\d.]+)x at rate 0\.1"),
             ("blouw.cpu", r"\*\*CPU ([\d.]+)x, GPU"),
             ("blouw.gpu", r"CPU [\d.]+x, GPU ([\d.]+)x, Jetson"),
             ("blouw.arm", r"Jetson/ARM ([\d.]+)x \(not within 2x\)")]
    return [Claim(f"energy.{key}", EV, pattern, "energy", key, rel=0.01) for key, pattern in prose]


def _demo_claims() -> list[Claim]:
    return [
        Claim("demo.float_acc", NETX, r"`TrainConfig\(data=\"digits\", epochs=20\)`\): ([\d.]+)%", "demo", "float_acc", tol=1.0),
        Claim("demo.qat_acc", NETX, r"epochs=20\)`\): [\d.]+% float, ([\d.]+)% QAT", "demo", "qat_acc", tol=1.0),
        Claim("demo.int_acc", NETX, r"% QAT and ([\d.]+)% integer", "demo", "int_acc", tol=1.0),
        Claim("demo.netx_mismatches", NETX, r"netx on Lava gave ([\d,]+) mismatching spikes", "demo", "netx_mismatches"),
        Claim("demo.netx_spikes", NETX, r"over 360 samples \(([\d,]+) spikes\)", "demo", "netx_spikes", rel=0.03),
        Claim("demo.loihi_per_op", EV, r"T = 16\): loihi per-op ([\d.]+) uJ per sample", "demo", "loihi_per_op_uj",
              rel=0.03),
        Claim("demo.loihi_system", EV, r"\(1 of 6 within 2x\); system ([\d.]+) uJ", "demo", "loihi_system_uj", rel=0.03),
    ]


def _netx_reset_claims() -> list[Claim]:
    return [Claim("netx.reset.with", NETX, r"with the reset ([\d,]+) mismatching spikes in 20 samples", "netx_reset",
                  "with_reset"),
            Claim("netx.reset.without", NETX, r"without it ([\d,]+) mismatching spikes in 20 samples", "netx_reset",
                  "without_reset")]


def _fuzz_claims() -> list[Claim]:
    """reliability.md's fast fuzz column (cases / error / ok / other): the counts depend on the fixture's
    trained bytes, so error and ok may move by a few cases between machines (rel 3 %); other must be 0."""
    out = []
    for target in ("deploy-nir-bytes", "deploy-nir-struct", "parity-nir", "import-nir", "export-checkpoint",
                   "convert-pt", "data-idx", "data-nmnist", "config-toml", "profiles-toml", "inputs-npy", "import-netx"):
        row = rf"\| {re.escape(target)} \| [^|]* \| ([\d,]+) / ([\d,]+) / ([\d,]+) / ([\d,]+),"
        for i, field in enumerate(("cases", "error", "ok", "other")):
            out.append(Claim(f"fuzz.{target}.{field}", REL, _nth_group(row, i), "fuzz", f"{target}.{field}",
                             rel=0.03 if field in ("error", "ok") else 0.0))
    total = r"\| \*\*total\*\* \| \| \*\*([\d,]+) / ([\d,]+) / ([\d,]+) / ([\d,]+)\*\*"
    for i, field in enumerate(("cases", "error", "ok", "other")):
        out.append(Claim(f"fuzz.total.{field}", REL, _nth_group(total, i), "fuzz", f"total.{field}",
                         rel=0.03 if field in ("error", "ok") else 0.0))
    return out


def _nth_group(pattern: str, n: int, group: str = r"([\d,]+)") -> str:
    """``pattern`` with only the n-th occurrence of ``group`` capturing (the others lose their brackets)."""
    parts = pattern.split(group)
    return "".join(p + (group if i == n else group[1:-1]) for i, p in enumerate(parts[:-1])) + parts[-1]


def _fmnist_claims() -> list[Claim]:
    """results.md's reduced table (benchmarks/fmnist_reduced.py): one row per examples/*_fmnist.toml."""
    fm = _module("fmnist_reduced")
    out = []
    cells = ("int_acc", "qat_acc", "lava_mismatches", "emulator_mismatches", "synops", "loihi_uj")
    for name, limit, epochs, lava in fm.CONFIGS:
        row = rf"\| `examples/{name}\.toml` \| [^|]* \| " + r" \| ".join([r"([-+\d.,]+)[^|]*"] * len(cells)) + r" \|"
        reduction = (f"{limit:,} training images (--limit), {epochs} epoch; Lava on {lava} test images, the emulator on "
                     f"{limit:,} (docs/results.md prints the reduced row beside the full table)")
        for i, cell in enumerate(cells):
            tol, rel = {"int_acc": (1.5, 0), "qat_acc": (1.5, 0), "synops": (0, 0.05),
                        "loihi_uj": (0, 0.05)}.get(cell, (0, 0))
            out.append(Claim(f"results.{name}.{cell}", RESULTS, _nth_group(row, i, r"([-+\d.,]+)"), "fmnist", f"{name}.{cell}", tol=tol, rel=rel,
                             reduction=reduction))
    return out


def _peers_export_claims() -> list[Claim]:
    """nir_peers.md's export table (group peers_export): mismatches exact where they are 0 (the claim is
    equality), else within 3 %; agreements within 1 point; spike totals within 3 %."""
    doc, out = "docs/nir_peers.md", []
    rows = {"snntorch": r"\| snnTorch `import_from_nir` \| 1e-4 \(hard-coded\) \| ([\d,]+), ([\d,]+) of ([\d,]+), ([\d,]+) spikes \| ([\d.]+)% \|",
            "norse_1e-4": r"\| Norse `from_nir\(dt=1e-4\)` \| 1e-4 \(passed\) \| ([\d,]+), ([\d,]+) \| ([\d.]+)% \|",
            "norse_1e-3": r"\| Norse `from_nir\(\)` \| 1e-3 \(its default\) \| ([\d,]+), ([\d,]+) \| ([\d.]+)% \|",
            "qat": r"\| spikeport QAT float forward \| - \| ([\d,]+), ([\d,]+) \| ([\d.]+)% \|",
            "loihi": r"\| Loihi integers \(forward_int = emulator = Lava\) \| - \| ([\d,]+), ([\d,]+) \(([\d.]+)%, ([\d.]+)% agree\) \| ([\d.]+)% \|"}
    fields = {"snntorch": ["hidden.mismatches", "output.mismatches", "spikes.hidden", "spikes.output", "agreement"],
              "norse_1e-4": ["hidden.mismatches", "output.mismatches", "agreement"],
              "norse_1e-3": ["hidden.mismatches", "output.mismatches", "agreement"],
              "qat": ["hidden.mismatches", "output.mismatches", "agreement"],
              "loihi": ["hidden.mismatches", "output.mismatches", "hidden.agree", "output.agree", "agreement"]}
    for tag, row in rows.items():
        groups = re.findall(r"\(\[[^)]*\]\+\)", row)
        for i, field in enumerate(fields[tag]):
            key = field if field.startswith("spikes.") else f"{tag}.{field}"
            pattern = row
            for j, g in enumerate(groups):  # keep the i-th group capturing
                pattern = pattern.replace(g, "\x00" if j == i else g[1:-1], 1)
            pattern = pattern.replace("\x00", groups[i])
            agree = field.endswith("agreement") or field.endswith("agree")
            out.append(Claim(f"peers_export.{tag}.{field}", doc, pattern, "peers_export", key,
                             tol=1.0 if agree else 0.0, rel=0.0 if agree else 0.03))
    return out


def _netx_targets_claims() -> list[Claim]:
    """netx.md's target table (benchmarks/netx_targets.py): float / integer accuracy per target, row and seed."""
    nt = _module("netx_targets")
    out = []
    for key, label, _, _, seeds in nt.ROWS:
        for seed in seeds:
            row = rf"\| {re.escape(label)} \| {seed} \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \|"
            for i, (target, kind) in enumerate([(t, k) for t in ("lava", "netx") for k in ("float", "int")]):
                out.append(Claim(f"netx_targets.{key}.{seed}.{target}.{kind}", NETX, _nth_group(row, i, PCT), "netx_targets",
                                 f"{key}.{seed}.{target}.{kind}", tol=1.5))
    return out


CLAIMS: list[Claim] = (_energy_claims() + _demo_claims() + _netx_reset_claims() + _fuzz_claims()
                       + _peers_export_claims() + _netx_targets_claims() + _fmnist_claims())


# ---- finding, comparing, reporting ------------------------------------------------------------------------

def printed(claim: Claim, text: str) -> list[float]:
    """The numbers ``claim.pattern`` captures in ``text`` (every occurrence), every run of whitespace in the
    text read as one space (so a pattern does not depend on where a line wraps)."""
    flat = re.sub(r"\s+", " ", text)
    return [float(m.group(1).replace(",", "")) for m in re.finditer(claim.pattern, flat)]


def check(claim: Claim, text: str, value: float | None, error: str = "") -> tuple[bool, str]:
    """(ok, one line) for one claim: the doc's figure(s) against the regenerated ``value``."""
    found = printed(claim, text)
    if len(found) != claim.count:
        return False, f"MISSING  {claim.name}: pattern found {len(found)} time(s) in {claim.doc}, expected {claim.count}"
    if value is None:
        return False, f"UNREPRODUCIBLE  {claim.name}: {error or 'its group gave no value for ' + claim.key}"
    bad = [f for f in found if abs(f - value) > claim.allowed(f)]
    line = (f"{claim.name}: doc {', '.join(f'{f:g}' for f in found)}, regenerated {value:.6g} "
            f"(allowed +-{claim.allowed(found[0]):.3g}){' [reduced: ' + claim.reduction + ']' if claim.reduction else ''}")
    return (not bad), ("STALE  " if bad else "ok  ") + line


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children (Lava's supervised children)."""
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def regenerate(groups: list[str], log=print) -> tuple[dict[str, dict], dict[str, str], dict[str, float]]:
    """Run each group; ``seconds[group]`` is its wall time, ``seconds[group + " cpu"]`` its CPU time (on a
    shared machine the CPU time / 2 bounds what 2 free cores would take)."""
    values, errors, seconds = {}, {}, {}
    for group in groups:
        fn, cost = GROUPS[group]
        log(f"== {group} ({cost}) ...", flush=True)
        t0, c0 = time.perf_counter(), _cpu_seconds()
        try:
            values[group] = fn()
        except Exception as err:  # a script that no longer runs: its figures are unreproducible
            errors[group] = f"{type(err).__name__}: {err}"[:300]
        seconds[group], seconds[f"{group} cpu"] = time.perf_counter() - t0, _cpu_seconds() - c0
        log(f"== {group}: {seconds[group]:.0f} s wall, {seconds[group + ' cpu']:.0f} s CPU", flush=True)
    return values, errors, seconds


def compare(claims: list[Claim], values: dict[str, dict], errors: dict[str, str], root: Path = ROOT) -> list[tuple[bool, str]]:
    texts: dict[str, str] = {}
    out = []
    for c in claims:
        texts.setdefault(c.doc, (root / c.doc).read_text() if (root / c.doc).exists() else "")
        out.append(check(c, texts[c.doc], values.get(c.group, {}).get(c.key), errors.get(c.group, "")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(GROUPS), help="regenerate and compare these groups only")
    ap.add_argument("--list", action="store_true", help="print the registry and exit")
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose docs are compared (default: this one)")
    ap.add_argument("--values", type=Path, help="compare against values saved by --save instead of regenerating")
    ap.add_argument("--save", type=Path, help="write the regenerated values (JSON)")
    args = ap.parse_args(argv)
    groups = args.only or list(GROUPS)
    claims = [c for c in CLAIMS if c.group in groups]
    if args.list:
        for c in claims:
            tol = " ".join(x for x in (f"tol {c.tol:g}" if c.tol else "", f"rel {c.rel:g}" if c.rel else "") if x)
            print(f"{c.name}\t{c.doc}\t{c.group}\t{tol or 'exact'}\t{c.reduction or 'full'}")
        return 0
    t0 = time.perf_counter()
    if args.values:
        saved = json.loads(args.values.read_text())
        values, errors, seconds = saved["values"], saved.get("errors", {}), saved.get("seconds", {})
    else:
        values, errors, seconds = regenerate(groups)
    if args.save:
        args.save.write_text(json.dumps({"values": values, "errors": errors, "seconds": seconds}, indent=1))
    results = compare(claims, values, errors, args.root)
    for _, line in results:
        print(line)
    failed = sum(not ok for ok, _ in results)
    print(f"claims: {len(results) - failed} of {len(results)} figures reproduced; groups "
          + ", ".join(f"{g} {seconds.get(g, 0):.0f} s" for g in groups) + f"; {time.perf_counter() - t0:.0f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    # training's spike-input path is timed per machine (spikeport.train.spike_input), and the two paths round
    # differently: the regenerated figures take the GEMM everywhere, so they come out the same on any machine
    os.environ.setdefault("SPIKEPORT_SPIKE_INPUT", "dense")
    sys.exit(main())
