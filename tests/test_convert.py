"""Pickle is never loaded: a .pt / .pth given to any command is refused with the way to convert it, and
``spikeport convert-checkpoint`` reads tensors only (torch.load weights_only=True), validated against
the architecture, into safetensors + config.json."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spikeport.errors import SpikeportError
from spikeport.train.convert import convert_checkpoint
from tests.conftest import cli
from tests.test_cli import one_line_error

PWNED = Path("/tmp/spikeport-convert-pwned")


class Payload:
    """Unpickling this would create PWNED."""

    def __reduce__(self):
        return (exec, (f"open({str(PWNED)!r}, 'w').write('x')",))


@pytest.fixture(scope="module")
def pt_files(tiny_run, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("pt")
    sd = load_file(str(tiny_run / "model.safetensors"))
    torch.save({f"module.{k}": v.double() for k, v in sd.items()}, d / "ddp.pt")  # DDP prefix, float64
    torch.save({"state_dict": sd}, d / "wrapped.pth")
    (d / "evil.pt").write_bytes(pickle.dumps({"layers.0.weight": Payload()}))
    torch.save({**sd, "layers.0.weight": sd["layers.0.weight"][:, :-1]}, d / "shape.pt")
    torch.save({**sd, "layers.0.weight": sd["layers.0.weight"] * float("nan")}, d / "nan.pt")
    cfg = json.loads((tiny_run / "config.json").read_text())["config"]
    (d / "plain.json").write_text(json.dumps({k: cfg[k] for k in ("data", "hidden", "time_steps", "encoder")}))
    return {"dir": d, "weights": sd, "config": tiny_run / "config.json", "plain": d / "plain.json"}


@pytest.mark.parametrize("name, config", [("ddp.pt", "config"), ("wrapped.pth", "plain")])
def test_convert_state_dict_equals_original(pt_files, tmp_path, name, config):
    out = convert_checkpoint(pt_files["dir"] / name, config=pt_files[config], out=tmp_path / "run")
    got = load_file(str(out / "model.safetensors"))
    assert got.keys() == pt_files["weights"].keys()
    assert all(torch.equal(got[k], pt_files["weights"][k]) for k in got)
    assert json.loads((out / "config.json").read_text())["format"] == "spikeport-checkpoint"


@pytest.mark.parametrize("name, why", [("evil.pt", "Python objects other than tensors"),
                                       ("shape.pt", "has shape"), ("nan.pt", "NaN")])
def test_convert_refuses_bad_state_dicts(pt_files, tmp_path, name, why):
    with pytest.raises(SpikeportError, match=why):
        convert_checkpoint(pt_files["dir"] / name, config=pt_files["config"], out=tmp_path / "run")
    assert not PWNED.exists(), "the pickle payload ran"
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_pickle_anywhere_is_refused_with_the_conversion_hint(pt_files, tiny_run, tmp_path):
    pt = pt_files["dir"] / "ddp.pt"
    disguised = tmp_path / "model.nir"  # a pickle under another name is recognised by its bytes
    disguised.write_bytes(pt.read_bytes())
    for args in (["export", str(pt)], ["deploy", str(pt), "--backend", "emulator"],
                 ["deploy", str(disguised), "--backend", "emulator"], ["parity", str(pt), "--backend", "emulator"],
                 ["train", "--config", str(pt), "--out", str(tmp_path / "x")],
                 ["energy", str(tiny_run), "--profiles", str(pt), "--samples", "5"]):
        msg = one_line_error(cli(*args))
        assert "pickle" in msg and "convert-checkpoint" in msg, (args, msg)
    assert not PWNED.exists()


def test_cli_convert_then_export(pt_files, tmp_path):
    run = tmp_path / "run"
    proc = cli("convert-checkpoint", str(pt_files["dir"] / "ddp.pt"), "--config", str(pt_files["config"]),
               "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    assert cli("export", str(run)).returncode == 0 and (run / "model.nir").is_file()
    msg = one_line_error(cli("convert-checkpoint", str(pt_files["dir"] / "evil.pt"), "--config",
                             str(pt_files["config"]), "--out", str(tmp_path / "bad")))
    assert "refused" in msg and not PWNED.exists()
