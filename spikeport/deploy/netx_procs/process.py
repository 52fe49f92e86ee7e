"""A spike recorder for netx runs: Lava 0.10's ``Var.get`` reads one value per message, so the recorder
writes its spikes to a file itself (bit-packed ``.npy``, [steps, n]) after step ``record_steps``."""
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess


class SpikeRecorder(AbstractProcess):
    """Receives ``shape`` = (n,) spikes every step; writes rows 1..record_steps to ``record_path``."""

    def __init__(self, *, shape: tuple, record_path: str, record_steps: int, **kwargs):
        super().__init__(shape=shape, record_path=str(record_path), record_steps=int(record_steps), **kwargs)
        self.s_in = InPort(shape=shape)
