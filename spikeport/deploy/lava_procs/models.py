"""Bit-accurate (fixed_pt) process models of spikeport's custom processes. numpy only: no torch here
(Lava forks these models; torch inside them can hang)."""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.models import AbstractPyDenseModelBitAcc
from lava.proc.lif.models import PyLifResetModelBitAcc
from lava.proc.sparse.models import AbstractPySparseModelBitAcc

from spikeport.deploy.lava_procs.process import FrameSource, LoihiLIF, WindowedDense, WindowedSparse


def _window_starts(model) -> bool:
    return model.time_step % model.proc_params["reset_interval"] == model.proc_params["reset_offset"]


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFrameSourceModel(PyLoihiProcessModel):
    """Row k of ``frames`` at step k+1 (contiguous reads), zeros once the frames are used up."""

    frames: np.ndarray = LavaPyType(np.ndarray, np.int32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def run_spk(self):
        k = self.time_step - 1
        self.s_out.send(self.frames[k] if k < len(self.frames) else np.zeros(self.frames.shape[1:], np.int32))


@implements(proc=WindowedDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyWindowedDenseModelBitAcc(AbstractPyDenseModelBitAcc):
    """Dense fixed_pt, with the buffered output zeroed on the first step of every sample window."""

    def run_spk(self):
        if _window_starts(self):
            self.a_buff = self.a_buff * 0
        super().run_spk()


@implements(proc=WindowedSparse, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyWindowedSparseModelBitAcc(AbstractPySparseModelBitAcc):
    """Sparse fixed_pt, with the buffered output zeroed on the first step of every sample window."""

    def run_spk(self):
        if _window_starts(self):
            self.a_buff = self.a_buff * 0
        super().run_spk()


@implements(proc=LoihiLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyLoihiLIFModelBitAcc(PyLifResetModelBitAcc):
    """Lava's LIFReset fixed_pt model, plus the v floor (KLIF) and spike recording to a file."""

    # Lava's decorators refuse to re-declare a model subclass for another process, and would append our
    # tags to the parent's: start this class from a clean slate.
    implements_process = None
    tags: list = []

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.floor_v = bool(proc_params["floor_v"])
        self.record_path = proc_params["record_path"]
        self.record_steps = int(proc_params["record_steps"])
        self.record = None

    def subthr_dynamics(self, activation_in: np.ndarray):
        super().subthr_dynamics(activation_in)
        if self.floor_v:
            self.v[:] = np.maximum(self.v, 0)

    def spiking_activation(self):
        s = super().spiking_activation()
        if self.record_path and self.time_step <= self.record_steps:
            if self.record is None:
                self.record = np.zeros((self.record_steps, s.size), dtype=bool)
            self.record[self.time_step - 1] = s.ravel()
            if self.time_step == self.record_steps:
                np.save(self.record_path, np.packbits(self.record, axis=1))
        return s
