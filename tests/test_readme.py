"""The new user's path (issue 27): the README's Python API runs as written (a doctest), every command it
shows exists with the options it uses, every page it links exists, it stays short, what `make demo` leaves
out is named in one line, and the Loihi 2 recipe of docs/netx.md is the run spikeport verifies."""
from __future__ import annotations

import doctest
import re
import shlex
import sys

import numpy as np
import pytest

from tests.conftest import REPO

README = REPO / "README.md"


def _blocks(text: str) -> list[str]:
    """Indented (4-space) code blocks of a markdown text, each as one string of its lines."""
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("    ") and (current or not line.strip().startswith("-")):
            current.append(line[4:])
        elif current and not line.strip():
            blocks.append("\n".join(current))
            current = []
        elif current:
            blocks.append("\n".join(current))
            current = []
    return blocks


def _commands(text: str) -> list[str]:
    """The shell commands of the indented code blocks, continuation lines joined, comments dropped."""
    out = []
    for block in _blocks(text):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("  #")[0].strip()
            if command:
                out.append(command)
    return out


def test_readme_is_short_and_links_exist():
    text = README.read_text()
    assert len(text.splitlines()) <= 120
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not link.startswith("http")]
    assert local and all((REPO / link).exists() for link in local), [x for x in local if not (REPO / x).exists()]


def test_readme_python_api_runs_as_written(tmp_path, monkeypatch):
    """The ```python block of "## Python API", run by doctest in a scratch folder (its runs/ go there)."""
    text = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(code, {}, "README.md: Python API", str(README), 0)
    assert len(test.examples) >= 10
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, out=sys.stdout.write)
    assert runner.failures == 0 and runner.tries == len(test.examples)
    assert (tmp_path / "runs" / "api" / "energy.json").is_file()


def _cli_options() -> dict[str, set[str]]:
    import typer.main

    from spikeport.cli import app

    group = typer.main.get_command(app)
    return {name: {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
            for name, cmd in group.commands.items()}


def test_every_readme_command_exists_with_its_options():
    """Each `spikeport CMD --opt ...` line names a real command and real options of it; `make X` a target;
    `python FILE` a file of the repository (the stale-API problem of issue 27, for the commands)."""
    options, makefile = _cli_options(), (REPO / "Makefile").read_text()
    commands = _commands(README.read_text())
    assert sum(c.startswith("spikeport ") for c in commands) >= 8
    for command in commands:
        words = shlex.split(command)
        if words[0] == "spikeport":
            assert words[1] in options, command
            used = {w.split("=")[0] for w in words[2:] if w.startswith("-")}
            assert used <= options[words[1]], (command, used - options[words[1]])
        elif words[0] == "make":
            assert re.search(rf"^{re.escape(words[1])}:", makefile, re.M), command
        elif words[0] == "python":
            assert (REPO / words[1]).is_file(), command
        else:
            pytest.fail(f"README command not checked: {command}")


def test_commands_page_names_real_options():
    """docs/commands.md's synopses, checked the same way (its placeholders RUN, GRAPH.nir are not paths here)."""
    options = _cli_options()
    for command in _commands((REPO / "docs" / "commands.md").read_text()):
        words = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "))
        if words[0] != "spikeport":
            continue
        used = {w.split("=")[0] for w in words[2:] if w.startswith("--")}
        assert words[1] in options and used <= options[words[1]], (command, used - options.get(words[1], set()))


def test_netx_backend_without_lava_dl_names_make_netx(monkeypatch):
    """After a `make` that skipped lava-dl, `parity --backend netx` says in one line which target installs it."""
    from spikeport.errors import SpikeportError
    from spikeport.pipeline import parse_backends

    monkeypatch.setitem(sys.modules, "lava.lib.dl.netx", None)  # what an environment without lava-dl looks like
    with pytest.raises(SpikeportError) as err:
        parse_backends("netx,emulator")
    assert "`make netx`" in str(err.value) and "\n" not in str(err.value)
    assert parse_backends("lava,emulator") == ["lava", "emulator"]  # only netx needs it


def test_energy_page_example_profile_is_validated(tmp_path):
    """docs/energy.md's example of a user's profile file loads, and its per-op estimate is 'validated'."""
    from spikeport.measure import load_profiles
    from spikeport.measure.energy import validation

    page = (REPO / "docs" / "energy.md").read_text()
    toml = next(b for b in _blocks(page) if b.startswith("[profiles.mychip]"))
    path = tmp_path / "my_devices.toml"
    path.write_text(toml + "\n")
    assert validation(load_profiles(path)["mychip"])["per_op"]["status"] == "validated"


def _recipe() -> str:
    page = (REPO / "docs" / "netx.md").read_text().split("## To Loihi 2", 1)[1]
    return next(b for b in _blocks(page) if "run_windows" in b)


def test_loihi2_recipe_is_the_verified_run(tmp_path):
    """docs/netx.md's Loihi 2 recipe, run as written with Lava's fixed_pt simulation in place of the chip
    (the one line it asks a user to write, connecting a source and sinks, done here), equals the emulator
    spike for spike on a net with a recurrent block; the same run without the recurrent reset does not."""
    from lava.magma.core.run_configs import Loihi2SimCfg

    from spikeport.deploy import emulator
    from spikeport.deploy.lava_backend import align
    from spikeport.export.netx_export import write_netx
    from tests import netx_nets

    rng = np.random.default_rng(3)
    net = netx_nets.flat_net(rng)
    T, N = net.time_steps, 8
    x = (rng.random((T, N, *net.input_shape)) < 0.3).astype(np.int64)
    path = write_netx(net, tmp_path / "model.net")
    code = _recipe().replace("RUN/model.net", str(path)).replace("input_message_bits=8", "input_message_bits=0")
    code = code.replace("Loihi2HwCfg()", 'Loihi2SimCfg(select_tag="fixed_pt")')
    code = re.sub(r"\n# connect a source[^\n]*\n", "\nrecorded = connect(net)\n", code)
    assert code.count("recorded = connect(net)") == 1 and "run_windows(net, T, N" in code
    expected = emulator.run(net, x).spikes

    def run(reset: bool) -> list[np.ndarray]:
        def connect(network):
            from spikeport.deploy.lava_procs.process import FrameSource
            from spikeport.deploy.netx_procs.process import SpikeRecorder

            steps = N * T + len(network.layers) + 1
            source = FrameSource(frames=np.ascontiguousarray(x.transpose(1, 0, 2).reshape(N * T, -1), np.int32))
            source.s_out.connect(network.inp)
            files = []
            for i, block in enumerate(network.layers):
                n = int(np.prod(block.out.shape))
                rec = SpikeRecorder(shape=(n,), record_path=str(tmp_path / f"{reset}{i}.npy"), record_steps=steps)
                block.out.connect(rec.s_in)
                files.append((i, n, tmp_path / f"{reset}{i}.npy"))
            return files

        scope = {"connect": connect, "T": T, "N": N, "Loihi2SimCfg": Loihi2SimCfg}
        source = code if reset else code.replace("run_windows(net, T, N,", "run_windows(net, T, N, reset_recurrent=False,")
        exec(source.replace("from lava.magma.core.run_configs import Loihi2HwCfg\n", ""), scope)  # noqa: S102
        return [align(np.unpackbits(np.load(f), axis=1, count=n).astype(bool), i, T, N) for i, n, f in scope["recorded"]]

    got = run(reset=True)
    assert [int((g != e).sum()) for g, e in zip(got, expected)] == [0] * len(expected)
    leaked = run(reset=False)
    assert sum(int((g != e).sum()) for g, e in zip(leaked, expected)) > 0  # the reset is what makes it exact
