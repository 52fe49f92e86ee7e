"""Bit-accurate process model of :class:`WindowedDense` (numpy only)."""
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.models import AbstractPyDenseModelBitAcc

from spikeport.deploy.lava_procs.process import WindowedDense


@implements(proc=WindowedDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyWindowedDenseModelBitAcc(AbstractPyDenseModelBitAcc):
    """Dense fixed_pt, with the buffered output zeroed on the first step of every sample window."""

    def run_spk(self):
        interval = self.proc_params["reset_interval"]
        if self.time_step % interval == self.proc_params["reset_offset"]:
            self.a_buff = self.a_buff * 0
        super().run_spk()
