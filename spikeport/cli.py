"""spikeport's command line: one thin command per stage (train, export, deploy, parity, energy,
report, demo). Errors in the input are one line on stderr with exit code 2; a failed parity gate
exits with 1."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from spikeport.errors import ParityFailure, SpikeportError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train spiking networks, export them to NIR, run them bit-exact on Lava's Loihi "
                       "model or the batched emulator, and measure parity, operations and energy.")
console = Console(stderr=True)
out = Console()


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)


def _summary(rows: list[tuple[str, str]], title: str) -> None:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


@app.command()
def train(
    data: str = typer.Option("digits", help="digits | mnist5k | fashion-mnist | mnist | nmnist"),
    epochs: Optional[int] = typer.Option(None, min=1, help="training epochs"),
    out_dir: Path = typer.Option(..., "--out", help="run folder to write (model.safetensors, config.json, metrics.json)"),
    method: Optional[str] = typer.Option(None, help="training method (lif, ...)"),
    arch: Optional[str] = typer.Option(None, help="network architecture (fc, ...)"),
    hidden: Optional[str] = typer.Option(None, help="hidden layer sizes, comma-separated, e.g. 256,128"),
    time_steps: Optional[int] = typer.Option(None, "--time-steps", "-T", min=1, help="time steps per sample"),
    encoder: Optional[str] = typer.Option(None, help="input encoder: direct | rate | latency"),
    batch_size: Optional[int] = typer.Option(None, min=1),
    lr: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    limit: Optional[int] = typer.Option(None, min=1, help="use only the first N train and test samples"),
    data_dir: Optional[str] = typer.Option(None, help="folder of IDX / N-MNIST files"),
    config: Optional[Path] = typer.Option(None, help="TOML file with the training configuration; flags override it"),
):
    """Train a spiking network with surrogate-gradient BPTT and quantization-aware training."""
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train as run_train

    cfg = TrainConfig.from_toml(config) if config else TrainConfig()
    given = {"data": data if (data != "digits" or not config) else None, "epochs": epochs, "method": method,
             "arch": arch, "time_steps": time_steps, "encoder": encoder, "batch_size": batch_size, "lr": lr,
             "seed": seed, "limit": limit, "data_dir": data_dir}
    for key, val in given.items():
        if val is not None:
            setattr(cfg, key, val)
    if hidden is not None:
        try:
            cfg.hidden = [int(h) for h in hidden.split(",") if h.strip()]
        except ValueError:
            raise SpikeportError(f"--hidden must be comma-separated integers, got {hidden!r}") from None
    cfg.validate("options")
    with _progress() as prog:
        task = prog.add_task(f"training {cfg.method} on {cfg.data}", total=None)
        metrics = run_train(cfg, out_dir, progress=lambda _s, done, total: prog.update(task, completed=done, total=total))
    _summary([("float accuracy", f"{metrics['float_accuracy']:.2%}"),
              ("quantized (Loihi) accuracy", f"{metrics['quantized_accuracy']:.2%}"),
              ("train time", f"{metrics['train_seconds']:.1f} s"), ("run folder", str(out_dir))], "trained")


@app.command()
def export(run_dir: Path = typer.Argument(..., help="run folder written by `spikeport train`"),
           out_path: Optional[Path] = typer.Option(None, "--out", help="output .nir (default RUN/model.nir)")):
    """Export a checkpoint to NIR (float parameters + Loihi integers in node metadata)."""
    from spikeport.export.nir_export import export_run

    path = export_run(run_dir, out_path)
    out.print(f"wrote {path}")


@app.command()
def deploy(graph: Path = typer.Argument(..., help="a .nir file"),
           data: str = typer.Option("digits", help="dataset whose test split is run"),
           backend: str = typer.Option("lava", help="lava | emulator"),
           samples: Optional[int] = typer.Option(None, help="number of test samples (default: all)"),
           out_dir: Optional[Path] = typer.Option(None, "--out", help="folder for deploy.json and predictions.npz"),
           data_dir: Optional[str] = typer.Option(None)):
    """Run a NIR graph alone on Lava (fixed_pt) or the emulator and report its accuracy."""
    from spikeport.workflow import deploy as run_deploy

    with console.status(f"running {graph} on {backend}"):
        res = run_deploy(graph, data=data, data_dir=data_dir, backend=backend, samples=samples, out=out_dir)
    _summary([("backend", res["backend"]), ("network", res["network"]), ("samples", str(res["samples"])),
              ("accuracy", f"{res['accuracy']:.2%}"), ("samples/s", f"{res['samples_per_s']:.1f}")], "deployed")


@app.command()
def parity(run_dir: Path = typer.Argument(..., help="run folder with checkpoint and model.nir"),
           backend: str = typer.Option("lava", help="lava | emulator | lava,emulator (compares all three)"),
           samples: Optional[int] = typer.Option(None, help="number of test samples (default: all)"),
           max_mismatches: int = typer.Option(0, help="exit 1 when spike mismatches exceed this"),
           shards: int = typer.Option(1, help="split the samples over N worker processes (merged exactly)"),
           out_path: Optional[Path] = typer.Option(None, "--out", help="parity.json path (default RUN/parity.json)")):
    """Compare the quantized PyTorch reference with the deployed graph, spike by spike (CI gate)."""
    from spikeport.report.markdown import summary_rows
    from spikeport.workflow import parity as run_parity

    with console.status(f"parity on {backend}"):
        res = run_parity(run_dir, backend=backend, samples=samples, max_mismatches=max_mismatches, out=out_path,
                         shards=shards)
    _summary(summary_rows({"parity": res}), "parity")


@app.command()
def energy(target: Path = typer.Argument(..., help="run folder or .nir file"),
           profile: Optional[list[str]] = typer.Option(None, help="device profile(s); default all"),
           profiles_file: Optional[Path] = typer.Option(None, "--profiles", help="extra TOML profile file"),
           samples: int = typer.Option(1000, help="test samples to count operations on"),
           data: Optional[str] = typer.Option(None, help="dataset (default: the one named in the graph)"),
           data_dir: Optional[str] = typer.Option(None)):
    """Count SynOps / MACs / neuron updates on the deployed network and estimate energy per sample."""
    from spikeport.report.markdown import summary_rows
    from spikeport.workflow import check_samples, energy as run_energy

    check_samples(samples)
    res = run_energy(target, profiles=profile, profiles_file=profiles_file, samples=samples, data=data, data_dir=data_dir)
    _summary(summary_rows({"energy": res}), "energy per sample")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="run folder")):
    """Write report.md (and report.html) from the run folder's JSON files."""
    from spikeport.report import markdown

    if not Path(run_dir).is_dir():
        raise SpikeportError(f"{run_dir}: run folder not found")
    out.print(f"wrote {markdown.write(run_dir)}")


@app.command()
def demo(out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="run folder"),
         epochs: int = typer.Option(20, min=1), samples: Optional[int] = typer.Option(None, help="test samples")):
    """The whole path on digits: train -> export -> Lava + emulator parity -> energy -> report."""
    from spikeport.report import markdown
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train as run_train
    from spikeport.export.nir_export import export_run
    from spikeport.workflow import energy as run_energy, parity as run_parity

    t0 = time.time()
    cfg = TrainConfig(data="digits", epochs=epochs)
    with _progress() as prog:
        task = prog.add_task("1/4 training CUBA-LIF MLP on digits (QAT)", total=None)
        run_train(cfg, out_dir, progress=lambda _s, done, total: prog.update(task, completed=done, total=total))
    export_run(out_dir)
    with console.status("3/4 parity: quantized PyTorch vs emulator vs Lava fixed_pt"):
        run_parity(out_dir, backend="lava,emulator", samples=samples)
    with console.status("4/4 counting operations and pricing energy"):
        run_energy(out_dir, samples=samples)
    path = markdown.write(out_dir)
    _summary(markdown.summary_rows(markdown.load_reports(out_dir)), f"spikeport demo ({time.time() - t0:.0f} s)")
    out.print(f"reports: {out_dir}/parity.json, {out_dir}/energy.json, {path}")


def _fail(message: str, code: int) -> None:
    """One unwrapped line on stderr, then exit."""
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.exit(code)


def main() -> None:
    try:
        app()
    except ParityFailure as err:
        _fail(f"spikeport: {err}", 1)
    except SpikeportError as err:
        _fail(f"spikeport: error: {err}", 2)
    except KeyboardInterrupt:
        _fail("spikeport: interrupted", 130)
    except Exception as err:  # never a traceback for users; SPIKEPORT_DEBUG=1 shows it
        if os.environ.get("SPIKEPORT_DEBUG"):
            raise
        _fail(f"spikeport: error: {type(err).__name__}: {str(err)[:300]}", 2)


if __name__ == "__main__":
    main()
