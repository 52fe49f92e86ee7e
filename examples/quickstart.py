"""spikeport from Python: train -> export -> emulator + Lava parity -> energy, on scikit-learn digits.

Run: .venv/bin/python examples/quickstart.py [OUT_DIR]
"""
import sys

from spikeport import pipeline as workflow
from spikeport.export.nir_export import export_run
from spikeport.train.config import TrainConfig
from spikeport.train.loop import train


def main(out: str = "runs/quickstart") -> None:
    metrics = train(TrainConfig(data="digits", epochs=15, hidden=[128], time_steps=16), out)
    print(f"float accuracy {metrics['float_accuracy']:.2%}, Loihi-integer accuracy {metrics['quantized_accuracy']:.2%}")
    print("exported", export_run(out))
    res = workflow.parity(out, backend="lava,emulator", samples=100)
    for c in res["comparisons"]:
        print(f"{c['pair']:<20} spike mismatches {c['spike_mismatches']}  agreement {c['prediction_agreement']:.2%}")
    energy = workflow.energy(out, samples=100, profiles=["loihi", "ann-fp32-45nm", "ann-fp32-45nm-mem"])
    for name, joules in energy["energy_j"].items():
        print(f"{name:<20} {joules * 1e6:8.3f} uJ / sample  ({energy['synops']:.0f} SynOps / sample)")


if __name__ == "__main__":  # Lava runs in a child process: keep the guard
    main(*sys.argv[1:])
