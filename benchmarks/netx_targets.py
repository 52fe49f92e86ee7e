"""docs/netx.md's table "Accuracy, float / Loihi integer": the same configs and seeds trained with
``target = "lava"`` and ``target = "netx"`` (what made netx the default). `make verify` reruns it
(benchmarks/claims.py, group "netx_targets") and compares every cell.

    PYTHONPATH=$PWD python benchmarks/netx_targets.py [--write]

Each row: a config, a dataset and budget, a seed; each cell: float accuracy / Loihi-integer accuracy (%,
metrics.json's ``float_accuracy`` and ``quantized_accuracy`` on the test split: digits 360 samples, one
sample = 0.28 points; Fashion-MNIST 10,000). Torch runs with 2 threads.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "netx.md"
BEGIN, END = "<!-- netx_targets.py: begin -->", "<!-- netx_targets.py: end (generated; make verify compares it) -->"
# (key, label in the doc, base config (None: TrainConfig defaults) and overrides, seeds)
ROWS = [
    ("demo", "demo: digits MLP 64-128-10, direct, 20 epochs", None, {"data": "digits", "epochs": 20}, (0, 1)),
    ("lif_fmnist_10k", "lif_fmnist (784-512-10), Fashion-MNIST, 10k train samples, 3 epochs", "lif_fmnist",
     {"epochs": 3, "limit": 10_000}, (0, 1)),
    ("lif_fmnist_digits", "lif_fmnist architecture on digits, 10 epochs", "lif_fmnist",
     {"data": "digits", "epochs": 10}, (0,)),
    ("lif_conv_digits", "lif_conv_fmnist architecture on digits, 10 epochs", "lif_conv_fmnist",
     {"data": "digits", "epochs": 10}, (0,)),
    ("bpsrm_digits", "bpsrm_fmnist architecture on digits, 10 epochs", "bpsrm_fmnist",
     {"data": "digits", "epochs": 10}, (0,)),
]


def accuracies(base: str | None, overrides: dict, seed: int, target: str, work: Path) -> tuple[float, float]:
    """(float %, Loihi-integer %) of one training run."""
    import torch

    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    torch.set_num_threads(2)
    fields = TrainConfig.from_toml(ROOT / "examples" / f"{base}.toml").to_dict() if base else {}
    cfg = TrainConfig.from_dict({**fields, **overrides, "seed": seed, "target": target})
    metrics = train(cfg, work / f"{base or 'demo'}-{seed}-{target}")
    return 100 * metrics["float_accuracy"], 100 * metrics["quantized_accuracy"]


def run_all(only: list[str] | None = None, log=print) -> dict[str, float]:
    """``{"KEY.SEED.TARGET.float" | ".int": %}`` for every row (or the ``only`` keys)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="spikeport-netx-targets-") as tmp:
        for key, _, base, overrides, seeds in ROWS:
            if only and key not in only:
                continue
            for seed in seeds:
                for target in ("lava", "netx"):
                    f, i = accuracies(base, overrides, seed, target, Path(tmp))
                    out[f"{key}.{seed}.{target}.float"], out[f"{key}.{seed}.{target}.int"] = f, i
                    log(f"netx_targets {key} seed {seed} {target}: {f:.2f} / {i:.2f}")
    return out


def markdown(values: dict[str, float]) -> str:
    lines = ["| network (config, data, budget) | seed | `target = \"lava\"` | `target = \"netx\"` |", "|---|---|---|---|"]
    for key, label, _, _, seeds in ROWS:
        for seed in seeds:
            if f"{key}.{seed}.lava.float" not in values:
                continue
            cells = [f"{values[f'{key}.{seed}.{t}.float']:.1f} / {values[f'{key}.{seed}.{t}.int']:.1f}"
                     for t in ("lava", "netx")]
            lines.append(f"| {label} | {seed} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def write_doc(table: str, path: Path = DOC) -> None:
    from spikeport.files.fileio import replace_between

    replace_between(path, BEGIN, END, table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=[r[0] for r in ROWS])
    ap.add_argument("--write", action="store_true", help=f"replace the table between the markers of {DOC}")
    ap.add_argument("--values", type=Path, help="write the values (JSON) here too")
    args = ap.parse_args(argv)
    values = run_all(args.only)
    if args.values:
        args.values.write_text(json.dumps(values, indent=1))
    table = markdown(values)
    if args.write:
        write_doc(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
