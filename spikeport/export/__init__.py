"""Checkpoint -> NIR (and ONNX)."""
