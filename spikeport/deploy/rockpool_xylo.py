"""Rockpool's Xylo Audio 2 simulator module (``rockpool.devices.xylo.syns61201.XyloSim``) without samna.

Rockpool 3.1.0's ``import rockpool.devices.xylo`` fails unless samna is installed: the package
``__init__`` imports every Xylo generation, and ``syns65302/afe_samna_pdm.py`` imports samna
unconditionally. The two files the simulator needs (``syns61300/xylo_sim.py``, the base class, and
``syns61201/xylo_sim.py``) import only rockpool's core and ``xylosim``. :func:`xylo_sim_class` loads those
two files from Rockpool's installed package by path, under empty stand-ins for the packages above
them, and removes every stand-in afterwards (nothing of samna is needed or installed).

``XyloSim.from_specification(**spec)`` then builds Rockpool's module on ``xylosim.v2`` from the keywords
of :meth:`spikeport.core.xylo_net.XyloNet.spec`.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

from spikeport.errors import SpikeportError

_PACKAGES = ("rockpool.devices", "rockpool.devices.xylo", "rockpool.devices.xylo.syns61300",
             "rockpool.devices.xylo.syns61201")
_FILES = (("rockpool.devices.xylo.syns61300.xylo_sim", "syns61300/xylo_sim.py"),
          ("rockpool.devices.xylo.syns61201.xylo_sim", "syns61201/xylo_sim.py"))


def xylo_sim_class():
    """Rockpool's ``syns61201.XyloSim`` class, loaded from its file (see the module docstring)."""
    spec = importlib.util.find_spec("rockpool")
    if spec is None or not spec.submodule_search_locations:
        raise SpikeportError("Rockpool is not installed (pip install rockpool) ")
    root = Path(list(spec.submodule_search_locations)[0])
    added = []
    try:
        for name in _PACKAGES:
            if name not in sys.modules:
                stub = types.ModuleType(name)
                stub.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
                sys.modules[name] = stub
                added.append(name)
        cls = None
        for name, rel in _FILES:
            path = root / "devices" / "xylo" / rel
            if not path.is_file():
                raise SpikeportError(f"{path}: not found in this Rockpool release")
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            added.append(name)
            mod_spec.loader.exec_module(module)
            cls = module.XyloSim
        return cls
    finally:
        for name in added:
            sys.modules.pop(name, None)
