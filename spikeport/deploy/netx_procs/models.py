"""numpy-only model of :class:`SpikeRecorder` (Lava forks it; no torch here)."""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spikeport.deploy.netx_procs.process import SpikeRecorder


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderModel(PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.path = proc_params["record_path"]
        self.steps = int(proc_params["record_steps"])
        self.rows = None

    def run_spk(self):
        s = self.s_in.recv()
        if self.time_step <= self.steps:
            if self.rows is None:
                self.rows = np.zeros((self.steps, s.size), dtype=bool)
            self.rows[self.time_step - 1] = s.ravel() != 0
            if self.time_step == self.steps:
                np.save(self.path, np.packbits(self.rows, axis=1))
