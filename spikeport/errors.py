"""The one exception type users see: a clear, one-line message (the CLI prints it, exit code 2)."""


class SpikeportError(Exception):
    """Bad input or a failed stage. ``str(err)`` is one line that names the file / node / field."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ParityFailure(SpikeportError):
    """Parity was measured and failed its gate (the CLI exits 1, not 2)."""


class LavaRuntimeError(Exception):
    """Lava's runtime failed (its child process or a process model died or raised, a pipe broke), twice
    in fresh processes: no result was measured. Not bad input: the CLI exits 3. ``str(err)`` is one line
    naming the saved log of the Lava children (``log``)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
