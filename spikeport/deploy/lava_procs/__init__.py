"""Custom Lava processes (kept in a folder of their own: Lava's compiler imports every module here)."""
