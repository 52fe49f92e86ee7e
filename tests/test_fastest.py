"""The measured choice of a code path (``spikeport.files.fastest``) and its use by the spike-input kernel:
which path wins is decided by the times measured, here by a fake clock (no timing in a test)."""
from __future__ import annotations

import json

import pytest
import torch

from spikeport.files.fastest import MARGIN, Chooser
from spikeport.train import spike_input


class FakeClock:
    """A clock that only moves when a candidate runs: each candidate advances it by its own cost."""

    def __init__(self):
        self.now = 0.0
        self.calls = {}

    def candidate(self, name: str, seconds: float):
        def run():
            self.calls[name] = self.calls.get(name, 0) + 1
            self.now += seconds
        return run

    def __call__(self) -> float:
        return self.now


def _pair(clock: FakeClock, dense_s: float, sparse_s: float) -> dict:
    return {"dense": clock.candidate("dense", dense_s), "sparse": clock.candidate("sparse", sparse_s)}


@pytest.mark.parametrize("dense_s, sparse_s, expect", [
    (10e-3, 4e-3, "sparse"),  # the kernel measured faster: it runs
    (4e-3, 10e-3, "dense"),  # the GEMM measured faster: the GEMM runs
    (10e-3, 10e-3 * (1 - MARGIN / 2), "dense"),  # within the margin: the reference (first) stays
    (10e-3, 10e-3 * (1 - 2 * MARGIN), "sparse"),
])
def test_the_faster_measured_path_wins(dense_s, sparse_s, expect):
    clock = FakeClock()
    chooser = Chooser(None, timer=clock, machine_id="m", warmup=1, reps=3)
    assert chooser.choose("layer", _pair(clock, dense_s, sparse_s)) == expect
    assert clock.calls == {"dense": 4, "sparse": 4}  # 1 warm-up + 3 timed rounds each
    assert chooser.timings["layer"] == pytest.approx({"dense": dense_s, "sparse": sparse_s})


def test_choice_is_cached_per_machine_and_key(tmp_path):
    path = tmp_path / "cache" / "fastest.json"
    clock = FakeClock()
    assert Chooser(path, timer=clock, machine_id="m1").choose("k", _pair(clock, 9e-3, 3e-3)) == "sparse"
    stored = json.loads(path.read_text())[Chooser(machine_id="m1").full_key("k")]  # "m1, N threads | k"
    assert stored["choice"] == "sparse" and stored["best_ms"] == {"dense": 9.0, "sparse": 3.0}
    # another process on the same machine: read from the file, nothing timed, whatever the times would be now
    again = FakeClock()
    assert Chooser(path, timer=again, machine_id="m1").choose("k", _pair(again, 1e-3, 9e-3)) == "sparse"
    assert again.calls == {}
    # the same process asks again: remembered, nothing timed
    chooser = Chooser(path, timer=again, machine_id="m1")
    chooser.choose("k", _pair(again, 1e-3, 9e-3))
    path.unlink()
    assert chooser.choose("k", _pair(again, 1e-3, 9e-3)) == "sparse" and again.calls == {}
    # another machine, or another key: timed, and this time the GEMM is faster
    other = FakeClock()
    assert Chooser(path, timer=other, machine_id="m2").choose("k", _pair(other, 1e-3, 9e-3)) == "dense"
    assert Chooser(path, timer=other, machine_id="m2").choose("k2", _pair(other, 1e-3, 9e-3)) == "dense"
    assert other.calls == {"dense": 14, "sparse": 14}
    assert set(json.loads(path.read_text())) == {Chooser(machine_id="m2").full_key(k) for k in ("k", "k2")}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"KEY": "sparse"}', '{"KEY": {"choice": "gpu"}}'])
def test_a_corrupt_cache_is_timed_again_and_rewritten(tmp_path, content):
    path = tmp_path / "fastest.json"
    key = Chooser(machine_id="m").full_key("k")
    path.write_text(content.replace("KEY", key))
    clock = FakeClock()
    assert Chooser(path, timer=clock, machine_id="m").choose("k", _pair(clock, 1e-3, 5e-3)) == "dense"
    assert clock.calls["dense"] > 0 and json.loads(path.read_text())[key]["choice"] == "dense"


def test_one_thread_is_timed_in_cpu_time_several_in_wall_time(monkeypatch):
    """A busy machine descheduling a single-threaded path does not inflate its CPU time; parallel paths are
    compared by the wall time their threads save."""
    import time

    from spikeport.files import fastest

    for n, timer in ((1, time.process_time), (2, time.perf_counter)):
        monkeypatch.setattr(torch, "get_num_threads", lambda n=n: n)
        assert fastest.default_timer() is timer and Chooser(machine_id="m").full_key("k") == f"m, {n} threads | k"


class ScriptedChooser(Chooser):
    """Runs every candidate once (the real kernels) and reports the scripted times."""

    def __init__(self, times: dict):
        super().__init__(None, machine_id="m")
        self.times, self.keys = times, []

    def measure(self, candidates):
        for run in candidates.values():
            run()
        return dict(self.times)

    def choose(self, key, candidates):
        self.keys.append(key)
        return super().choose(key, candidates)


@pytest.mark.parametrize("faster", ["dense", "sparse"])
def test_spike_linear_runs_the_path_measured_faster(faster):
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(200, 64, generator=gen) < 0.2).double()
    w = torch.randn(32, 64, generator=gen, dtype=torch.float64).requires_grad_()
    slow, fast = 2e-3, 1e-3
    chooser = ScriptedChooser({"dense": slow, "sparse": fast} if faster == "sparse" else {"dense": fast, "sparse": slow})
    y = spike_input.spike_linear(x, w, choose=chooser)
    assert w.grad is None  # timing both paths (forward + backward on copies) left the caller's graph alone
    assert (y is None) == (faster == "dense")
    if y is not None:
        torch.testing.assert_close(y, x @ w.t())
        assert y.grad_fn is not None
    band = round(float(x.mean()) / spike_input.DENSITY_BAND) * spike_input.DENSITY_BAND
    assert chooser.keys == [f"spike_linear 200x64->32 float64 backward density {band:.2f}"]
    with torch.no_grad():  # inference: another key (forward only), timed on its own
        spike_input.spike_linear(x, w, choose=chooser)
    assert chooser.keys[-1].endswith(f"forward only density {band:.2f}")
