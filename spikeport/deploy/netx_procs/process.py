"""Recorders for Lava runs of netx networks (and spikeport's own Lava networks where a population's own
recording does not do): Lava 0.10's ``Var.get`` reads one value per message, so a recorder writes what
it saw to a file itself, after step ``record_steps``.

- :class:`SpikeRecorder`: the messages on an out port every step: bit-packed spikes, or (``graded``)
  int32 payloads, ``.npy`` [steps, n].
- :class:`VarRecorder`: a Var of another process (e.g. a non-spiking output's voltage v) read through a
  RefPort after every step (management phase, once the step's update is done), int32 ``.npy`` [steps, n].
"""
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess


class SpikeRecorder(AbstractProcess):
    """Receives ``shape`` = (n,) messages every step; writes rows 1..record_steps to ``record_path``
    (bit-packed spikes, or int32 payloads when ``graded``)."""

    def __init__(self, *, shape: tuple, record_path: str, record_steps: int, graded: bool = False, **kwargs):
        super().__init__(shape=shape, record_path=str(record_path), record_steps=int(record_steps),
                         graded=bool(graded), **kwargs)
        self.s_in = InPort(shape=shape)


class VarRecorder(AbstractProcess):
    """Reads the Var it is connected to (:meth:`connect_var`) after every step; writes rows
    1..record_steps (flattened C-order) to ``record_path`` as int32."""

    def __init__(self, *, shape: tuple, record_path: str, record_steps: int, **kwargs):
        super().__init__(shape=shape, record_path=str(record_path), record_steps=int(record_steps), **kwargs)
        self.ref = RefPort(shape=shape)

    def connect_var(self, var) -> None:
        self.ref.connect_var(var)
