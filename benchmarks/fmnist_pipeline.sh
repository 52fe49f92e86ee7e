#!/usr/bin/env bash
# One row of docs/results.md: train from a config, export, Lava + emulator parity on 200 test samples,
# emulator parity on the whole test set, energy on 1,000 samples. Usage:
#   benchmarks/fmnist_pipeline.sh examples/lif_fmnist.toml runs/lif_fmnist [extra train flags]
# then: .venv/bin/python benchmarks/results_table.py --write docs/results.md runs/*_fmnist  (the table only)
set -euo pipefail
cfg=$1 out=$2
shift 2
sp=${SPIKEPORT:-.venv/bin/spikeport}
[ -f "$out/metrics.json" ] || "$sp" train --config "$cfg" --out "$out" "$@"
"$sp" export "$out"
"$sp" parity "$out" --backend lava,emulator --samples 200 --out "$out/parity_lava.json"
"$sp" parity "$out" --backend emulator --out "$out/parity_emulator.json"
"$sp" energy "$out" --samples 1000 > /dev/null
echo "$cfg" > "$out/source_config.txt"
