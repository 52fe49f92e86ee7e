"""spikeport's custom Lava processes (their numpy-only models are in ``models.py``).

- :class:`WindowedDense`, :class:`WindowedSparse`: a recurrent connection delays by one step, so the
  first step of sample n would receive the last spikes of sample n-1. These clear their buffered
  output when a sample window begins, exactly like running each sample from a fresh state.
- :class:`FrameSource`: sends row k of a [steps, n] integer array at Lava step k+1 (what Lava's
  ``io.source.RingBuffer`` does with columns of an [n, steps] array, whose strided reads grow slow
  for long streams).
- :class:`LoihiLIF`: ``LIFReset`` with two additions. ``floor_v`` (KLIF) sets v = max(v, 0) after
  integration, before the threshold. ``record_path`` makes the population record its own spikes and
  write them, bit-packed, to that ``.npy`` file at step ``record_steps``: Lava 0.10's ``Var.get``
  sends an array one value per message (a 128 x 5000 sink buffer takes ~16 s to read), so sinks are
  not used for streaming runs.
"""
import numpy as np
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.proc.dense.process import Dense
from lava.proc.lif.process import LIFReset
from lava.proc.sparse.process import Sparse


class FrameSource(AbstractProcess):
    """Sends ``frames[k]`` (int32 [steps, n], one row per Lava step) at step k+1; zeros after the last."""

    def __init__(self, *, frames: np.ndarray, **kwargs):
        super().__init__(frames=frames, **kwargs)
        self.frames = Var(shape=frames.shape, init=frames)
        self.s_out = OutPort(shape=frames.shape[1:])


class WindowedDense(Dense):
    """``Dense`` plus ``reset_interval`` and ``reset_offset`` (Lava steps) for the buffer clear."""

    def __init__(self, *, reset_interval: int, reset_offset: int, **kwargs):
        super().__init__(**kwargs)
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset) % int(reset_interval)


class WindowedSparse(Sparse):
    """``Sparse`` plus ``reset_interval`` and ``reset_offset`` (Lava steps) for the buffer clear."""

    def __init__(self, *, reset_interval: int, reset_offset: int, **kwargs):
        super().__init__(**kwargs)
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset) % int(reset_interval)


class LoihiLIF(LIFReset):
    """``LIFReset`` with ``floor_v`` (bool) and optional self-recording (``record_path``: a file name,
    "" for none; ``record_steps``: the Lava step after which the file is written)."""

    def __init__(self, *, floor_v: bool = False, record_path: str = "", record_steps: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.proc_params["floor_v"] = bool(floor_v)
        self.proc_params["record_path"] = str(record_path)
        self.proc_params["record_steps"] = int(record_steps)
