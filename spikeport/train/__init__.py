"""Torch modules, surrogate gradients, the training methods and the training loop."""
