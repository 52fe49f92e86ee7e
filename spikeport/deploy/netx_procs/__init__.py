"""spikeport's Lava process for recording netx blocks (own folder: Lava imports every file here)."""
