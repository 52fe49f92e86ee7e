"""spikeport: train spiking networks, export them to NIR, run them on Lava's bit-accurate Loihi
model and an exact batched emulator, and measure parity, operations and energy."""

__version__ = "0.1.0"
