"""A deliberately failing connection, for the supervisor's tests (``fault="model-raise"`` or
``"model-hang"``).

:class:`FaultyDense` is a ``Dense`` whose bit-accurate process model, at step ``fail_step``, raises
inside Lava's runtime (``mode="raise"``: what a bug in a process model does) or blocks forever
(``mode="hang"``: a deadlocked model). Lava 0.10 does not recover from either: after a model raises,
its runtime waits forever for the dead model's output. The supervised child
(``spikeport.deploy.lava_child``) notices the dead actor, the supervisor (``spikeport.deploy.supervise``) its timeout;
both end in a clear error with every Lava process reaped. Process and model share this module in
the custom-process folder Lava's compiler scans (numpy only, like every model here).
"""
import time

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.models import AbstractPyDenseModelBitAcc
from lava.proc.dense.process import Dense

FAULT_MESSAGE = "injected failure inside a Lava process model"
MODES = ("raise", "hang")


class FaultyDense(Dense):
    """``Dense`` plus ``fail_step`` (Lava step, from 1) at which its model fails as ``mode`` says."""

    def __init__(self, *, fail_step: int = 2, mode: str = "raise", **kwargs):
        if mode not in MODES:
            raise ValueError(f"FaultyDense mode must be one of {MODES}, got {mode!r}")
        super().__init__(**kwargs)
        self.proc_params["fail_step"] = int(fail_step)
        self.proc_params["mode"] = mode


@implements(proc=FaultyDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyFaultyDenseModelBitAcc(AbstractPyDenseModelBitAcc):
    """Dense fixed_pt until ``fail_step``, then ``RuntimeError`` from ``run_spk`` (or a sleep forever)."""

    def run_spk(self):
        if self.time_step >= self.proc_params["fail_step"]:
            if self.proc_params["mode"] == "hang":
                while True:
                    time.sleep(3600)
            raise RuntimeError(f"{FAULT_MESSAGE} (step {self.time_step})")
        super().run_spk()
