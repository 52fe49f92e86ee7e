"""NIR -> Lava processes and NIR -> batched emulator. Runs from a .nir file alone; never imports train."""
