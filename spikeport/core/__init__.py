"""The model of a neuron and of Loihi's integer arithmetic, written once (no torch- or lava-only code)."""
