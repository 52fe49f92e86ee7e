"""Child-process entry point for :mod:`spikeport.deploy.supervise` (``python -m`` this module).

Arguments: a work folder holding ``net.npz`` and ``x.npy``, the record mode, and an optional
injected fault. Writes ``spikes.npz`` or ``error.txt``; touches ``heartbeat`` every second.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.is_set():
        path.touch()
        stop.wait(1.0)


def main(argv: list[str]) -> int:
    work, record, fault = Path(argv[0]), argv[1], (argv[2] if len(argv) > 2 else "")
    stop = threading.Event()
    if fault != "silent-hang":
        threading.Thread(target=_heartbeat, args=(work / "heartbeat", stop), daemon=True).start()
    try:
        if fault in ("hang", "silent-hang"):
            time.sleep(10**6)
        if fault == "raise":
            raise RuntimeError("injected failure inside the Lava child")
        from spikeport.deploy import lava_backend
        from spikeport.deploy.netdef import load_arrays

        with np.load(work / "net.npz", allow_pickle=False) as arrays:
            net = load_arrays(arrays)
        x = np.load(work / "x.npy", allow_pickle=False)
        spikes = lava_backend.run_network(net, x, record=record, fault=fault)
        np.savez(work / "spikes.npz", **{f"s{i}": s for i, s in enumerate(spikes)})
        return 0
    except BaseException as err:  # reported to the parent as one line
        (work / "error.txt").write_text(f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
        return 3
    finally:
        stop.set()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
