"""numpy-only models of the recorders (Lava forks them; no torch here)."""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spikeport.deploy.netx_procs.process import SpikeRecorder, VarRecorder


class _Rows:
    """Rows 1..steps of a recording, written to ``path`` once the last one is in."""

    def __init__(self, proc_params, dtype):
        self.path, self.steps, self.dtype, self.rows = proc_params["record_path"], int(proc_params["record_steps"]), \
            dtype, None

    def put(self, step: int, row: np.ndarray, packed: bool) -> None:
        if step > self.steps:
            return
        if self.rows is None:
            self.rows = np.zeros((self.steps, row.size), dtype=self.dtype)
        self.rows[step - 1] = row.ravel()
        if step == self.steps:
            np.save(self.path, np.packbits(self.rows, axis=1) if packed else self.rows)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderModel(PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.graded = bool(proc_params["graded"])
        self.rows = _Rows(proc_params, np.int32 if self.graded else bool)

    def run_spk(self):
        s = self.s_in.recv()
        self.rows.put(self.time_step, s if self.graded else s != 0, packed=not self.graded)


@implements(proc=VarRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyVarRecorderModel(PyLoihiProcessModel):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.rows = _Rows(proc_params, np.int32)

    def post_guard(self):
        return True

    def run_post_mgmt(self):
        self.rows.put(self.time_step, np.asarray(self.ref.read()).astype(np.int32), packed=False)
