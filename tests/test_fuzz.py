"""Fuzzing every reader: >= 1,000 seeded corrupted inputs (truncated and bit-flipped NIR/HDF5 files,
wrong shapes, missing nodes, cycles without a neuron, huge dimensions, NaN weights, malformed
config.json / safetensors / TOML, IDX and N-MNIST data files, .npy inputs, pickle checkpoints) fed
to export, import, deploy, parity, the data loaders and convert-checkpoint.

Each case must end within 10 s in success or a :class:`SpikeportError`, never another exception, a
hang or a crash; a sample runs through the real CLI (exit code 2, one stderr line). Reproduce one case
with ``python -m tests.test_fuzz TARGET SEED``.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from spikeport.errors import SpikeportError
from tests import fuzz_cases as fc

CASE_LIMIT_S = 10
FAST = {"deploy-nir-bytes": 120, "deploy-nir-struct": 150, "parity-nir": 40, "export-checkpoint": 200,
        "import-nir": 50, "data-idx": 120, "data-nmnist": 60, "config-toml": 80, "profiles-toml": 80,
        "inputs-npy": 60, "convert-pt": 60, "import-netx": 40}  # 1,060 cases, ~60 s
SLOW_FACTOR = 10


@dataclass
class Base:
    """Clean artifacts the mutators start from."""

    run: Path
    work: Path

    @property
    def nir(self) -> Path:
        return self.run / "model.nir"

    @property
    def netx(self) -> dict:
        """lava-dl slayer's own netx files, one per kind of :mod:`tests.slayer_nets` (made once)."""
        if not hasattr(self, "_netx"):
            from tests import slayer_nets

            folder = self.work / "netx"
            folder.mkdir(exist_ok=True)
            self._netx = {}
            for build in (slayer_nets.cuba_encoder_cnn, slayer_nets.sdnn_pilotnet, slayer_nets.cuba_delays_recurrent):
                build(folder / f"{build.__name__}.net")
                self._netx[build.__name__] = folder / f"{build.__name__}.net"
        return self._netx


class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case (a BaseException, so no ``except Exception`` in the code swallows it)."""


def _alarm(_sig, _frame):
    raise CaseTimeout()


def _copy_run(base: Base, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "model.nir"):
        shutil.copyfile(base.run / name, dst / name)
    return dst


def case(target: str, seed: int, base: Base) -> tuple[str, str]:
    """Build and run one case; returns (mutation name, outcome) with outcome 'ok' or 'error'.
    Anything else (another exception, a timeout) propagates."""
    from spikeport import pipeline as workflow
    from spikeport.data import load_dataset

    rng = np.random.default_rng(seed)
    tmp = base.work / f"{target}-{seed}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    what, fn = "", None
    if target in ("deploy-nir-bytes", "deploy-nir-struct"):
        path = tmp / "model.nir"
        what = fc.write_mutated_bytes(base.nir, path, rng, hdf5=True) if target.endswith("bytes") \
            else fc.mutate_nir(base.nir, path, rng)
        fn = lambda: workflow.deploy(path, data="digits", backend="emulator", samples=3)  # noqa: E731
    elif target == "parity-nir":
        run = _copy_run(base, tmp / "run")
        what = fc.mutate_nir(base.nir, run / "model.nir", rng) if rng.random() < 0.7 \
            else fc.write_mutated_bytes(base.nir, run / "model.nir", rng, hdf5=True)
        fn = lambda: workflow.parity(run, backend="emulator", samples=3, max_mismatches=None)  # noqa: E731
    elif target == "export-checkpoint":
        from spikeport.export.nir_export import export_run

        run = _copy_run(base, tmp / "run")
        if rng.random() < 0.5:
            what = fc.mutate_safetensors(base.run / "model.safetensors", run / "model.safetensors", rng)
        else:
            what = fc.write_mutated_json(base.run / "config.json", run / "config.json", rng)
        fn = lambda: export_run(run, tmp / "out.nir")  # noqa: E731
    elif target == "import-nir":
        from spikeport.importer.run import import_graph

        path = tmp / "peer.nir"
        what = fc.mutate_nir(base.nir, path, rng) if rng.random() < 0.7 \
            else fc.write_mutated_bytes(base.nir, path, rng, hdf5=True)
        dt = _graph_dt(base.nir)
        fn = lambda: import_graph(path, dt=dt, out=tmp / "imported", producer="spikeport", time_steps=4)  # noqa: E731
    elif target == "import-netx":  # lava-dl slayer's own files (every netx block kind), one dataset changed
        from spikeport.deploy import emulator
        from spikeport.importer.netx_import import import_netx
        from spikeport.nirfmt.runnet import load_run

        names = sorted(base.netx)
        src = base.netx[names[int(rng.integers(len(names)))]]
        what = fc.mutate_netx(src, tmp / "m.net", rng)

        def fn():  # import, then run the network it reads on the emulator (one sample)
            import_netx(tmp / "m.net", tmp / "run", time_steps=3)
            net = load_run(tmp / "run")
            emulator.run(net, np.ones((3, 1, *net.input_shape), np.int64))
    elif target == "data-idx":
        what = fc.write_idx_folder(tmp / "idx", rng, mutate=True)
        fn = lambda: load_dataset("mnist", str(tmp / "idx"))  # noqa: E731
    elif target == "data-nmnist":
        what = fc.write_nmnist_folder(tmp / "nm", rng)
        fn = lambda: load_dataset("nmnist", str(tmp / "nm"), n_bins=int(rng.integers(1, 6)))  # noqa: E731
    elif target == "config-toml":
        from spikeport.train.config import TrainConfig

        text = "[train]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in _train_toml_fields().items())
        what = fc.write_mutated_toml(text, tmp / "train.toml", rng)
        fn = lambda: TrainConfig.from_toml(tmp / "train.toml")  # noqa: E731
    elif target == "profiles-toml":
        from spikeport.measure.energy import PACKAGED_PROFILES, load_profiles

        what = fc.write_mutated_toml(PACKAGED_PROFILES.read_text(), tmp / "p.toml", rng)
        fn = lambda: load_profiles(tmp / "p.toml")  # noqa: E731
    elif target == "inputs-npy":
        from spikeport.importer.runio import load_inputs

        what = fc.write_mutated_npy(tmp / "in.npy", (3, 4, 64), rng)
        fn = lambda: load_inputs(tmp / "in.npy", None, (64,), 4)  # noqa: E731
    elif target == "convert-pt":
        from spikeport.train.convert import convert_checkpoint

        pt, cfg = _pickle_case(base, tmp, rng)
        what = "pt"
        fn = lambda: convert_checkpoint(pt, config=cfg, out=tmp / "converted")  # noqa: E731
    else:
        raise ValueError(target)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_LIMIT_S)
    try:
        fn()
        outcome = "ok"
    except SpikeportError:
        outcome = "error"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        shutil.rmtree(tmp, ignore_errors=True)
    return what, outcome


def _graph_dt(path: Path) -> float:
    import h5py

    with h5py.File(path, "r") as f:
        return float(f["node/metadata/spikeport/dt"][()])


def _train_toml_fields() -> dict:
    return {"data": "digits", "hidden": [32], "time_steps": 8, "epochs": 2, "batch_size": 64, "lr": 0.002,
            "beta_syn": 0.5, "beta_mem": 0.9, "encoder": "direct", "seed": 1}


def _pickle_case(base: Base, tmp: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """A .pt file: a clean state dict mutated (bytes, shapes, NaN, extra keys) or a malicious pickle."""
    import pickle

    import torch
    from safetensors.torch import load_file

    sd = load_file(str(base.run / "model.safetensors"))
    raw = json.loads((base.run / "config.json").read_text())
    cfg_path = tmp / "config.json"
    cfg_path.write_text(json.dumps(raw))
    pt = tmp / "model.pt"
    kind = int(rng.integers(6))
    key = sorted(sd)[int(rng.integers(len(sd)))]
    if kind == 0:  # code execution attempt: must never run
        class Evil:
            def __reduce__(self):
                return (exec, ("open('/tmp/spikeport-fuzz-pwned', 'w').write('x')",))
        pt.write_bytes(pickle.dumps({"w": Evil()}))
    elif kind == 1:
        sd[key] = sd[key].T if sd[key].ndim == 2 else sd[key][:-1]
        torch.save(sd, pt)
    elif kind == 2:
        sd[key] = sd[key].clone().fill_(float("nan"))
        torch.save(sd, pt)
    elif kind == 3:
        sd["extra.weight"] = torch.zeros(2)
        torch.save(sd, pt)
    elif kind == 4:
        torch.save(sd, pt)
        pt.write_bytes(fc.mutate_bytes(pt.read_bytes(), rng))
    else:
        fc.write_mutated_json(base.run / "config.json", cfg_path, rng)
        torch.save(sd, pt)
    return pt, cfg_path


def run_target(target: str, seeds: range, base: Base) -> dict:
    """Run every seed; returns counts per outcome, the failures (seed, mutation, error) and the longest
    case in seconds."""
    counts: dict[str, int] = {"ok": 0, "error": 0}
    failures = []
    max_s = 0.0
    for seed in seeds:
        t0 = time.monotonic()
        try:
            what, outcome = case(target, seed, base)
            counts[outcome] += 1
            max_s = max(max_s, time.monotonic() - t0)
            if time.monotonic() - t0 > CASE_LIMIT_S:
                failures.append((seed, what, f"took {time.monotonic() - t0:.1f} s"))
        except CaseTimeout:
            failures.append((seed, "?", f"no result within {CASE_LIMIT_S} s"))
        except BaseException as err:  # noqa: BLE001 - the point is to catch everything
            if isinstance(err, KeyboardInterrupt):
                raise
            failures.append((seed, "?", f"{type(err).__name__}: {err}"[:300]))
    return {"counts": counts, "failures": failures, "max_s": round(max_s, 2)}


def report(target: str, seeds: range, res: dict) -> None:
    """One line of figures per target (seen with ``pytest -s``), for the closing note."""
    print("FUZZ " + json.dumps({"target": target, "seeds": f"{seeds.start}-{seeds.stop - 1}", "cases": len(seeds),
                                **res["counts"], "failures": len(res["failures"]), "max_s": res["max_s"]}))


@pytest.fixture(scope="module")
def base(tiny_run, tmp_path_factory) -> Base:
    return Base(run=tiny_run, work=tmp_path_factory.mktemp("fuzz"))


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
@pytest.mark.parametrize("target", sorted(FAST))
def test_fuzz_in_process(target, base):
    res = run_target(target, range(FAST[target]), base)
    report(target, range(FAST[target]), res)
    assert not res["failures"], f"{target}: {res['failures'][:5]} (counts {res['counts']})"
    assert not Path("/tmp/spikeport-fuzz-pwned").exists(), "a pickle payload was executed"


# Cases that hang inside the HDF5 library (a flipped bit in a variable-length string's heap reference; found
# by the long run, and by a scan of seeds again when the exported file's bytes changed): the trial read in
# a forked child times out (spikeport.files.isolate).
KNOWN_HANGS = [("deploy-nir-bytes", 448)]  # 706 until 2026-12-03, when the exported bytes changed


@pytest.mark.parametrize("target, seed", KNOWN_HANGS)
def test_known_library_hangs_end_in_an_error(target, seed, base, monkeypatch):
    from spikeport.nirfmt import guard as nir_guard

    monkeypatch.setattr(nir_guard, "READ_TIMEOUT_S", 2.0)
    t0 = time.monotonic()
    assert case(target, seed, base)[1] == "error"
    assert time.monotonic() - t0 < CASE_LIMIT_S


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(FAST))
def test_fuzz_in_process_long(target, base):
    n = FAST[target]
    res = run_target(target, range(n, n * SLOW_FACTOR), base)
    report(target, range(n, n * SLOW_FACTOR), res)
    assert not res["failures"], f"{target}: {res['failures'][:5]} (counts {res['counts']})"


def _cli_case(i: int, base: Base) -> tuple[list[str], Path]:
    """Argument list of the i-th CLI case and its scratch folder (mutated inputs inside)."""
    rng = np.random.default_rng(10_000 + i)
    tmp = base.work / f"cli-{i}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kind = (0, 1, 0, 1, 2, 3, 4)[i % 7]  # deploy cases start fastest (no torch import)
    if kind == 0:
        fc.mutate_nir(base.nir, tmp / "m.nir", rng)
        return ["deploy", str(tmp / "m.nir"), "--backend", "emulator", "--samples", "3"], tmp
    if kind == 1:
        fc.write_mutated_bytes(base.nir, tmp / "m.nir", rng, hdf5=True)
        return ["deploy", str(tmp / "m.nir"), "--backend", "emulator", "--samples", "3"], tmp
    if kind == 2:
        run = _copy_run(base, tmp / "run")
        fc.mutate_safetensors(base.run / "model.safetensors", run / "model.safetensors", rng)
        return ["export", str(run), "--out", str(tmp / "x.nir")], tmp
    if kind == 3:
        run = _copy_run(base, tmp / "run")
        obj = fc.mutate_json_obj(json.loads((base.run / "config.json").read_text()), rng)
        (run / "config.json").write_text(json.dumps(obj))
        return ["parity", str(run), "--backend", "emulator", "--samples", "3", "--max-mismatches", "1000000"], tmp
    fc.write_idx_folder(tmp / "idx", rng, mutate=True)
    return ["train", "--data", "mnist", "--data-dir", str(tmp / "idx"), "--epochs", "1", "--out", str(tmp / "r")], tmp


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_fuzz_through_the_cli(base):
    """~20 corrupted inputs through the real CLI: success, or exit 2 with exactly one stderr line."""
    def one(i):
        args, _tmp = _cli_case(i, base)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "spikeport.cli", *args], capture_output=True, text=True,
                              timeout=120)
        return i, args[0], proc, time.monotonic() - t0

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(20)))
    errors = 0
    for i, cmd, proc, seconds in results:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        if proc.returncode == 0:
            continue
        errors += 1
        assert proc.returncode == 2, f"case {i} ({cmd}): exit {proc.returncode}: {proc.stderr[-500:]}"
        assert len(lines) == 1 and lines[0].startswith("spikeport: error:"), f"case {i} ({cmd}): {proc.stderr[-800:]}"
        assert "Traceback" not in proc.stderr and seconds < 60
    assert errors >= 10  # most corruptions are detected, not silently run


if __name__ == "__main__":  # python -m tests.test_fuzz TARGET FIRST_SEED [LAST_SEED]: show failures in full
    import tempfile

    target, first = sys.argv[1], int(sys.argv[2])
    last = int(sys.argv[3]) if len(sys.argv) > 3 else first + 1
    run_dir = Path(sys.argv[4]) if len(sys.argv) > 4 else Path(tempfile.mkdtemp())
    b = Base(run=run_dir, work=Path(tempfile.mkdtemp()))
    summary = {"ok": 0, "error": 0}
    for s in range(first, last):
        try:
            w, o = case(target, s, b)
            summary[o] += 1
        except BaseException:  # noqa: BLE001
            print(f"--- {target} seed {s}")
            traceback.print_exc()
    print(summary)
