"""The one exception type users see: a clear, one-line message (the CLI prints it, exit code 2)."""


class SpikeportError(Exception):
    """Bad input or a failed stage. ``str(err)`` is one line that names the file / node / field."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ParityFailure(SpikeportError):
    """Parity was measured and failed its gate (the CLI exits 1, not 2)."""
