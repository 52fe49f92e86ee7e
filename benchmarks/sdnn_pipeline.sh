#!/usr/bin/env bash
# One sigma-delta row of docs/results.md: train from a config (unless RUN has metrics.json), export the netx
# file (a sigma-delta net has no NIR node), parity of Lava, netx on Lava and the emulator against the integer
# reference on 200 test images, emulator parity on the whole test set, energy on 1,000 test images, and the
# float / QAT / integer accuracies on the test set (test_metrics.json; a run trained with a validation split
# scored that split in metrics.json). A LIF run (the moving task's third row) goes through the same steps; its
# test_metrics.json has the float / QAT / integer accuracies alone (trained for target = "lava": no netx). Reduced runs set the sample counts:
# LAVA_SAMPLES (200), EMULATOR_SAMPLES (all), ENERGY_SAMPLES (1000). Usage:
#   benchmarks/sdnn_pipeline.sh examples/sdnn_conv_fmnist.toml runs/sdnn_conv_fmnist
set -euo pipefail
cfg=$1 out=$2
shift 2
sp=${SPIKEPORT:-.venv/bin/spikeport}
py=${PYTHON:-.venv/bin/python}
[ -f "$out/metrics.json" ] || "$sp" train --config "$cfg" --out "$out" "$@"
# a LIF run trained for target = "lava" (weight exponents netx cannot write): model.nir alone, Lava and the emulator
if "$py" -c 'import json, sys; c = json.load(open(sys.argv[1]))["config"]; sys.exit(c.get("neuron") != "sigma-delta" and c.get("target") == "lava")' "$out/config.json"; then
  "$sp" export "$out" --netx
  backends=lava,netx,emulator
else
  "$sp" export "$out"
  backends=lava,emulator
fi
"$sp" parity "$out" --backend "$backends" --samples "${LAVA_SAMPLES:-200}" --out "$out/parity_lava.json"
"$sp" parity "$out" --backend emulator ${EMULATOR_SAMPLES:+--samples "$EMULATOR_SAMPLES"} --out "$out/parity_emulator.json"
"$sp" energy "$out" --samples "${ENERGY_SAMPLES:-1000}" > /dev/null
"$py" benchmarks/sdnn_test_metrics.py "$out"
echo "$cfg" > "$out/source_config.txt"
