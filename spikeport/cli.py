"""spikeport's command line: one thin command per stage (train, export, import, deploy, parity, energy,
report, demo). Each command calls :mod:`spikeport.pipeline` (or train / export / importer) and
prints through :mod:`spikeport.report.console`.

Exit codes: 0 done; 1 a parity gate failed (measured, reported); 2 bad input (one line on stderr:
what is wrong and where); 3 an internal error, a bug in spikeport (one line naming the saved
traceback file), or Lava's runtime failing twice (one line naming the Lava children's saved log; no
result); 130 interrupted."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from spikeport.errors import LavaRuntimeError, ParityFailure, SpikeportError
from spikeport.files import runfolder
from spikeport.report import command_rows
from spikeport.report import markdown as md
from spikeport.report.console import Bars, exit_on_errors, out
from spikeport.report.console import columns_table as _table
from spikeport.report.console import summary as _summary

EXIT_CODES = ("Exit codes: 0 done, 1 parity gate failed, 2 bad input (one line saying what and where), "
              "3 internal error (a bug: the line names the saved traceback) or a Lava runtime failure (the line names "
              "Lava's log), 130 interrupted.")
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train spiking networks, export them to NIR, run them bit-exact on Lava's Loihi "
                       "model or the batched emulator, and measure parity, operations and energy. " + EXIT_CODES)


def _max_memory():
    return typer.Option(None, "--max-memory-gb", help="memory budget in GiB: samples run in chunks that fit, a network "
                        "whose one sample does not is refused with the estimate (default: 80% of available memory, "
                        "or SPIKEPORT_MAX_MEMORY_GB)")


def _max_steps():
    return typer.Option(None, "--max-steps", min=1, help="refuse runs of more than samples x time steps (default 1e8)")


def _timeout():
    return typer.Option(None, "--timeout", min=1, help="seconds before a Lava run is stopped (default 1800)")


def _quiet():
    return typer.Option(False, "--quiet", "-q", help="no progress bars (they are shown only when stdout is a terminal)")


@app.command()
def train(
    data: Optional[str] = typer.Option(None, help="digits (default) | mnist5k | fashion-mnist | mnist | nmnist | "
                                       "digits-rows (8 event channels, one image row per step; classes 0-7)"),
    epochs: Optional[int] = typer.Option(None, min=1, help="training epochs"),
    out_dir: Path = typer.Option(..., "--out", help="run folder to write (model.safetensors, config.json, metrics.json)"),
    method: Optional[str] = typer.Option(None, help="training method (lif, ...)"),
    neuron: Optional[str] = typer.Option(None, help="lif (default) | sigma-delta (Loihi 2 SDNN: ReLU layers sending "
                                         "thresholded changes; sd_* fields via --config)"),
    arch: Optional[str] = typer.Option(None, help="network architecture: fc | conv | rfc (conv geometry via --config)"),
    hidden: Optional[str] = typer.Option(None, help="hidden layer sizes, comma-separated, e.g. 256,128"),
    time_steps: Optional[int] = typer.Option(None, "--time-steps", "-T", min=1, help="time steps per sample"),
    encoder: Optional[str] = typer.Option(None, help="input encoder: direct | rate | latency | moving (the image "
                                          "moving by up to 1 px per step) | events (the counts of a temporal "
                                          "dataset)"),
    batch_size: Optional[int] = typer.Option(None, min=1),
    lr: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    limit: Optional[int] = typer.Option(None, min=1, help="use only the first N train and test samples"),
    population: Optional[int] = typer.Option(None, min=1, help="output neurons per class (a class scores its "
                                             "group's spikes; fewer ties at small T)"),
    readout: Optional[str] = typer.Option(None, help="spike_count | membrane (the output layer a non-spiking "
                                          "integrator, read by its voltage at the last step)"),
    data_dir: Optional[str] = typer.Option(None, help="folder of IDX / N-MNIST files"),
    config: Optional[Path] = typer.Option(None, help="TOML file with the training configuration; flags override it"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:K (training passes; integer evaluation runs on the CPU)"),
    distributed: bool = typer.Option(False, "--distributed", help="data-parallel training; launch with "
                                     "`torchrun --nproc-per-node N $(which spikeport) train ... --distributed`"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run folder's per-epoch checkpoint/ "
                                "(same options; ends with the weights an uninterrupted run reaches)"),
    from_run: Optional[Path] = typer.Option(None, "--from", help="fine-tune an imported run (`spikeport import "
                                            "GRAPH.nir`) on Loihi integers into --out (--epochs, default 10; --lr, "
                                            "--batch-size, --seed, --target)"),
    target: str = typer.Option("auto", help="--from: labels | producer (distil the producer's float outputs) | "
                               "auto (labels when the run has them)"),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="run the LIF loops through "
                                           "torch.compile (default: auto, when the run repays the compile time)"),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="--from: constant (default) | cosine "
                                              "(annealed to 0 over the batches)"),
    keep: Optional[str] = typer.Option(None, help="--from: best (default; the epoch best on the training samples) "
                                       "| last (the last epoch; suits --lr-schedule cosine)"),
    holdout: Optional[float] = typer.Option(None, help="--from: fraction of the run's samples held out from "
                                            "fine-tuning, drawn from those the import did not calibrate on "
                                            "(default 0.2; 0: train on all, e.g. when a separate test split is "
                                            "measured with parity --inputs)"),
    quiet: bool = _quiet(),
):
    """Train a spiking network with surrogate-gradient BPTT and quantization-aware training."""
    if from_run is not None:
        _finetune(from_run, out_dir, quiet, epochs=epochs or 10, lr=lr or 2e-3, batch_size=batch_size or 64,
                  seed=seed or 0, target=target, schedule=lr_schedule or "constant", keep=keep or "best",
                  holdout=0.2 if holdout is None else holdout)
        return
    if (lr_schedule, keep, holdout) != (None, None, None):
        raise SpikeportError("--lr-schedule, --keep and --holdout apply to fine-tuning (train --from RUN) only")
    from spikeport.train import resume as resume_state
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train as run_train

    if config:
        cfg = TrainConfig.from_toml(config)
    elif resume and resume_state.has_state(out_dir):  # the interrupted run's own configuration
        cfg = TrainConfig.from_dict(resume_state.read_state(out_dir)[0]["config"], str(out_dir / resume_state.STATE))
    else:
        cfg = TrainConfig()
    given = {"data": data, "epochs": epochs, "method": method, "neuron": neuron,
             "arch": arch, "time_steps": time_steps, "encoder": encoder, "batch_size": batch_size, "lr": lr,
             "seed": seed, "limit": limit, "data_dir": data_dir, "population": population, "compile": compile,
             "readout": readout}
    cfg.override(given, hidden)
    from spikeport.train.allocator import keep_freed_memory

    keep_freed_memory()  # CPU steps reuse freed pages instead of faulting fresh ones (SPIKEPORT_MALLOC=default: off)
    with Bars(quiet) as bars:
        tick = bars.callback(f"training {cfg.method} on {cfg.data} (batches)")
        metrics = run_train(cfg, out_dir, progress=lambda _s, done, total: tick(done, total),
                            device=device, use_distributed=distributed, resume=resume)
    if not metrics:  # a non-zero rank of a distributed run: rank 0 reports
        return
    _summary(command_rows.train_rows(metrics) + [("run folder", str(out_dir))], "trained")


@app.command()
def export(run_dir: Path = typer.Argument(..., help="run folder written by `spikeport train` (or by `spikeport "
                                           "import`: --onnx / --netx from its model.nir)"),
           out_path: Optional[Path] = typer.Option(None, "--out", help="output .nir (default RUN/model.nir)"),
           onnx: bool = typer.Option(False, "--onnx", help="also write RUN/model.onnx (integer Loihi model, "
                                     "time unrolled)"),
           netx: bool = typer.Option(False, "--netx", help="also write model.net (lava-dl netx HDF5, Loihi 2) "
                                     "beside the .nir"),
           xylo: bool = typer.Option(False, "--xylo", help="a run trained with target = \"xylo-audio2\": write "
                                     "RUN/model.xylo.json, its Xylo Audio 2 specification (docs/xylo.md), instead"),
           quiet: bool = _quiet()):
    """Export a checkpoint to NIR (float parameters + Loihi integers in node metadata), ONNX and netx. An
    imported run (`spikeport import`) already holds its model.nir: --onnx / --netx are written from it."""
    from spikeport.export.nir_export import export_run

    if xylo:
        from spikeport.export.xylo_export import export_xylo

        if (out_path, onnx, netx) != (None, False, False):
            raise SpikeportError("--xylo writes RUN/model.xylo.json alone (no --out, --onnx or --netx)")
        out.print(f"wrote {export_xylo(run_dir)}")
        return
    from spikeport.export.sd_export import export_lines, is_sigma_delta

    if is_sigma_delta(run_dir):  # no NIR node: the netx file is the run's graph
        for line in export_lines(run_dir, out_path, netx=netx, onnx=onnx):
            out.print(line)
        return
    notes = []
    imported = runfolder.is_imported(run_dir)
    if imported and out_path is not None:
        raise SpikeportError(f"{run_dir}: an imported run's graph is its model.nir (written by `spikeport import`); "
                             "--out does not apply")
    with Bars(quiet) as bars:
        bars.callback(f"exporting {run_dir}")
        paths = [run_dir / runfolder.MODEL_NIR] if imported else [export_run(run_dir, out_path)]
        if netx:
            from spikeport.export.netx_export import export_netx, written_accuracy

            paths.append(export_netx(paths[0]))
            if not imported:
                notes.append(written_accuracy(run_dir))  # the accuracy of what model.net holds
        if onnx:
            from spikeport.export.onnx_export import export_onnx

            paths.append(export_onnx(run_dir))
    for path in paths[1:] if imported else paths:
        out.print(f"wrote {path}")
    for note in notes:
        out.print(note)


@app.command("convert-checkpoint")
def convert_checkpoint(src: Path = typer.Argument(..., help="a PyTorch .pt / .pth file holding a plain state dict"),
                       config: Path = typer.Option(..., "--config", help="config.json: a spikeport checkpoint's, or "
                                                   "the training fields (data, hidden, time_steps, ...)"),
                       out_dir: Path = typer.Option(..., "--out", help="run folder to write")):
    """Convert a pickled PyTorch state dict safely (tensors only, torch.load weights_only=True, validated
    against the architecture) into model.safetensors + config.json."""
    from spikeport.train.convert import convert_checkpoint as run_convert

    path = run_convert(src, config=config, out=out_dir)
    out.print(f"wrote {path / 'model.safetensors'} and {path / 'config.json'}")


@app.command("import")
def import_(graph: Path = typer.Argument(..., help="a peer's .nir file, or a lava-dl netx file (.net)"),
            dt: Optional[float] = typer.Option(None, "--dt", help="seconds per simulation step (NIR stores none; "
                                               "required for .nir files, unused for netx files)"),
            out_dir: Path = typer.Option(..., "--out", help="run folder to write"),
            producer: str = typer.Option("auto", help="whose conventions: snntorch | norse | sinabs | rockpool | "
                                         "spikeport | auto (read from the graph metadata, never guessed)"),
            reset: Optional[str] = typer.Option(None, help="zero | subtract (NIR does not store the reset rule)"),
            reset_timing: Optional[str] = typer.Option(None, "--reset-timing", help="same-step | next-step: when a "
                                                       "neuron resets (NIR does not store it; default: the producer's "
                                                       "current release)"),
            allow_approx: bool = typer.Option(False, "--allow-approx", help="map what Loihi cannot express "
                                              "exactly anyway, listing each change in import.json"),
            weight_bits: int = typer.Option(8, "--weight-bits", help="8 | 16: 16 gives dense layers (feed-forward, "
                                            "recurrent, bias line) 16-bit weights, each two Loihi synapses from the "
                                            "same input (high and low byte): exact on Loihi, twice the synapses "
                                            "and synaptic operations; conv layers stay 8-bit"),
            netx: bool = typer.Option(False, "--netx", help="quantize as lava-dl's netx (Loihi 2) expresses, so "
                                      "`spikeport export RUN --netx` writes it: weight_exp 0, bias_exp 6, 8-bit; a "
                                      "bias into a current-based synapse becomes a voltage bias (--allow-approx)"),
            readout: str = typer.Option("spike_count", help="spike_count | current_sum: a class is the output "
                                        "neuron with the most spikes, or with the largest summed synaptic current "
                                        "(Loihi's u: what several spikes per step, e.g. Sinabs's IAF, stand for; "
                                        "a Loihi neuron fires once per step), summed on the chip: the output "
                                        "population runs as a non-spiking integrator read by its voltage"),
            inputs: Optional[Path] = typer.Option(None, help="inputs .npy [N, T, ...]: --calibration of them calibrate "
                                                  "the quantizer, the others are scored (agreement, parity); a netx "
                                                  "file also takes one integer frame per sample, [N, C, H, W] or flat "
                                                  "[N, n] in torch's C-major order (netx's (W, H, C) transposed), "
                                                  "repeated for --time-steps: an input block with a neuron takes it "
                                                  "as its bias (CUBA) or on its input port (SDNN)"),
            labels: Optional[Path] = typer.Option(None, help="labels .npy [N] integers"),
            time_steps: Optional[int] = typer.Option(None, "--time-steps", "-T", min=1,
                                                     help="steps per sample when no --inputs are given"),
            calibration: Optional[float] = typer.Option(None, help="how many of --inputs calibrate: a count N >= 1 "
                                                        "or a fraction in (0, 1) (default: min(256, half of them)); a "
                                                        "seeded choice, recorded in import.json. The others are "
                                                        "scored and never calibrate; at least one of each is needed "
                                                        "(else exit 2)"),
            finetune: Optional[int] = typer.Option(None, "--finetune", min=1, help="then fine-tune EPOCHS on Loihi "
                                                   "integers (QAT, surrogate BPTT; needs --inputs)"),
            target: str = typer.Option("auto", help="fine-tuning target: labels | producer (distil the producer's "
                                       "float outputs) | auto (labels when given); or xylo-audio2: import onto "
                                       "SynSense Xylo Audio 2 instead of Loihi (model.xylo.json; docs/xylo.md)"),
            holdout: float = typer.Option(0.2, help="fine-tuning: fraction of --inputs held out (the run's parity "
                                          "samples, drawn from those not calibrated on; the rest trains)"),
            lr_schedule: str = typer.Option("constant", "--lr-schedule", help="fine-tuning: constant | cosine "
                                            "(learning rate annealed to 0 over the batches)"),
            keep: str = typer.Option("best", help="fine-tuning: best (the epoch best on the training samples) | "
                                     "last (the last epoch; suits --lr-schedule cosine)"),
            spike_exp: int = typer.Option(6, "--spike-exp", min=0, max=7, help="netx file: netx's "
                                          "Network(spike_exp=...) for sigma-delta blocks (default 6, netx's)"),
            input_bits: Optional[int] = typer.Option(None, "--input-bits", min=0, max=24, help="netx file fed "
                                                     "through a synapse: message bits of its input (netx's "
                                                     "input_message_bits; default the file's, else 0: 0/1 spikes)"),
            output: str = typer.Option("auto", "--output", help="netx file: what the last block gives: auto | "
                                       "spikes | values (its voltage per step; auto: for a Sigma block or a LIF "
                                       "whose threshold is out of reach or 131071, netx's integrator)"),
            quiet: bool = _quiet()):
    """Import a peer's NIR graph (snnTorch, Norse, Sinabs, Rockpool) into a run folder with Loihi integers,
    or a lava-dl netx file (its integers as they are; parity then holds every backend against netx itself)."""
    from spikeport.importer.run import import_graph

    if finetune and (inputs is None or graph.suffix == ".net"):
        raise SpikeportError("--finetune needs a NIR graph and --inputs (the samples it trains on)")
    if graph.suffix == ".net":
        from spikeport.importer.netx_import import import_netx

        if weight_bits != 8 or readout != "spike_count" or netx or calibration is not None:
            raise SpikeportError("--weight-bits, --readout, --netx and --calibration apply to NIR graphs; a netx file "
                                 "is taken as it is")

        with Bars(quiet) as bars:
            bars.callback(f"importing {graph}")
            res = import_netx(graph, out_dir, time_steps=time_steps, inputs=inputs, labels=labels, spike_exp=spike_exp,
                              input_bits=input_bits, output=output)
        _summary(command_rows.netx_import_rows(res) + [("run folder", str(out_dir))], "imported")
        return
    if dt is None:
        raise SpikeportError("--dt is required for a NIR graph (seconds per step; NIR stores none)")
    if target == "xylo-audio2":
        from spikeport.importer.xylo_import import import_xylo
        from spikeport.report.chips import xylo_import_rows

        if finetune or weight_bits != 8 or readout != "spike_count" or netx:
            raise SpikeportError("--target xylo-audio2 imports as Xylo holds it: no --finetune, --weight-bits, "
                                 "--readout or --netx")
        with Bars(quiet) as bars:
            res = import_xylo(graph, dt=dt, out=out_dir, producer=producer, reset=reset, reset_timing=reset_timing,
                              allow_approx=allow_approx, inputs=inputs, labels=labels, time_steps=time_steps,
                              progress=bars.update)
        _summary(xylo_import_rows(res) + [("run folder", str(out_dir))], "imported onto Xylo Audio 2")
        return
    with Bars(quiet) as bars:
        res = import_graph(graph, dt=dt, out=out_dir, producer=producer, reset=reset, reset_timing=reset_timing,
                           allow_approx=allow_approx, weight_bits=weight_bits, readout=readout, netx=netx,
                           inputs=inputs, labels=labels, time_steps=time_steps, calibration=calibration,
                           progress=bars.update)
    _summary(command_rows.import_rows(res) + [("run folder", str(out_dir))], "imported")
    if finetune:
        _finetune(out_dir, out_dir, quiet, epochs=finetune, target=target, holdout=holdout, schedule=lr_schedule,
                  keep=keep)


def _finetune(run_dir: Path, out_dir: Path, quiet: bool, **kw) -> None:
    """Fine-tune an imported run (importer.finetune) and print before / after."""
    from spikeport.importer.finetune import finetune_run

    with Bars(quiet) as bars:
        res = finetune_run(run_dir, out=out_dir, progress=bars.update, **kw)
    _summary(command_rows.finetune_result_rows(res) + [("run folder", str(out_dir))], "fine-tuned")


@app.command()
def deploy(graph: Path = typer.Argument(..., help="a .nir file, or a run folder imported from a netx file"),
           data: str = typer.Option("digits", help="dataset whose test split is run"),
           backend: str = typer.Option("lava", help="lava | emulator | netx (the model.net beside the graph)"),
           samples: Optional[int] = typer.Option(None, help="number of test samples (default: all)"),
           out_dir: Optional[Path] = typer.Option(None, "--out", help="folder for deploy.json and predictions.npz"),
           data_dir: Optional[str] = typer.Option(None),
           inputs: Optional[Path] = typer.Option(None, help="inputs .npy [N, T, ...] instead of a dataset"),
           labels: Optional[Path] = typer.Option(None, help="labels .npy [N] for --inputs"),
           timeout: Optional[float] = _timeout(), max_memory_gb: Optional[float] = _max_memory(),
           max_steps: Optional[int] = _max_steps(), quiet: bool = _quiet()):
    """Run a NIR graph alone on Lava (fixed_pt) or the emulator and report its accuracy."""
    from spikeport.pipeline import deploy as run_deploy

    with Bars(quiet) as bars:
        res = run_deploy(graph, data=data, data_dir=data_dir, backend=backend, samples=samples, out=out_dir,
                         inputs=inputs, labels=labels, timeout_s=timeout, max_memory_gb=max_memory_gb,
                         max_steps=max_steps, progress=bars.callback(f"{backend} (samples)"))
    acc = "n/a (no labels)" if res["accuracy"] is None else f"{res['accuracy']:.2%}"
    _summary([("backend", res["backend"]), ("network", res["network"]), ("samples", str(res["samples"])),
              ("accuracy", acc), ("samples/s", f"{res['samples_per_s']:.1f}")], "deployed")


@app.command()
def parity(run_dir: Path = typer.Argument(..., help="run folder with checkpoint and model.nir"),
           backend: Optional[str] = typer.Option(None, help="lava (default) | emulator | netx (the run's model.net "
                                                 "on lava-dl's netx loader) | several, comma-separated: each against "
                                                 "the reference, the first two against each other; a Xylo run "
                                                 "(model.xylo.json): xylo (SynSense's xylosim) | emulator, default "
                                                 "xylo,emulator"),
           samples: Optional[int] = typer.Option(None, help="number of test samples (default: all)"),
           max_mismatches: int = typer.Option(0, help="exit 1 when spike mismatches exceed this"),
           min_agreement: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="imported runs: exit 1 when a "
                                                         "backend agrees with the float reference on fewer predictions "
                                                         "(default 0.99)"),
           shards: int = typer.Option(1, help="split the samples over N worker processes (merged exactly)"),
           cluster: Optional[str] = typer.Option(None, help="run the sample shards on a Ray cluster: HOST:PORT of "
                                                 "its head node, auto, or local (needs spikeport[cluster]; a failed "
                                                 "shard is run again; merged exactly)"),
           out_path: Optional[Path] = typer.Option(None, "--out", help="parity.json path (default RUN/parity.json)"),
           inputs: Optional[Path] = typer.Option(None, help="imported runs: inputs .npy [N, T, ...] (default: "
                                                 "the run's inputs.npy)"),
           labels: Optional[Path] = typer.Option(None, help="imported runs: labels .npy [N]"),
           timeout: Optional[float] = _timeout(), max_memory_gb: Optional[float] = _max_memory(),
           max_steps: Optional[int] = _max_steps(), quiet: bool = _quiet()):
    """Compare the quantized PyTorch reference (imported runs: the producer's float reference) with the
    deployed graph, spike by spike (CI gate: exit 1 when the gate fails)."""
    from spikeport.pipeline import parity as run_parity
    from spikeport.report.markdown import summary_rows

    if runfolder.is_xylo(run_dir):
        from spikeport.pipeline import xylo_parity

        with Bars(quiet, prefix="parity: ") as bars:
            res = xylo_parity.parity(run_dir, backend=backend or "xylo,emulator", samples=samples,
                                     max_mismatches=max_mismatches, out=out_path, inputs=inputs, labels=labels,
                                     min_agreement=min_agreement, progress=bars.update)
        _summary(summary_rows({"parity": res}), "parity (Xylo Audio 2)")
        return
    with Bars(quiet, prefix="parity: ") as bars:
        res = run_parity(run_dir, backend=backend or "lava", samples=samples, max_mismatches=max_mismatches,
                         out=out_path,
                         shards=shards, inputs=inputs, labels=labels, timeout_s=timeout,
                         max_memory_gb=max_memory_gb, max_steps=max_steps, progress=bars.update, cluster=cluster,
                         min_agreement=min_agreement)
    _summary(summary_rows({"parity": res}), "parity")


@app.command()
def energy(target: Path = typer.Argument(..., help="run folder or .nir file"),
           profile: Optional[list[str]] = typer.Option(None, help="device profile(s); default all"),
           profiles_file: Optional[Path] = typer.Option(None, "--profiles", help="extra TOML profile file"),
           samples: int = typer.Option(1000, help="test samples to count operations on"),
           data: Optional[str] = typer.Option(None, help="dataset (default: the one named in the graph)"),
           data_dir: Optional[str] = typer.Option(None),
           inputs: Optional[Path] = typer.Option(None, help="inputs .npy [N, T, ...] instead of a dataset"),
           max_memory_gb: Optional[float] = _max_memory(), max_steps: Optional[int] = _max_steps(),
           quiet: bool = _quiet()):
    """Count SynOps / MACs / neuron updates on the deployed network and estimate energy per sample (a Xylo run:
    SynOps, Xylo Audio 2 resources and the chip-level estimate, into xylo_energy.json)."""
    from spikeport.pipeline import check_samples
    from spikeport.pipeline import energy as run_energy
    from spikeport.report import markdown as md

    check_samples(samples)
    if target.is_dir() and runfolder.is_xylo(target):
        from spikeport.pipeline.xylo_energy_stage import energy as xylo_energy
        from spikeport.report.chips import xylo_energy_rows

        with Bars(quiet) as bars:
            res = xylo_energy(target, samples=samples, inputs=inputs, progress=bars.callback("energy (Xylo)"))
        _summary(xylo_energy_rows(res), f"Xylo Audio 2 ({res['network']}, T={res['time_steps']}, "
                 f"{res['samples']} samples)")
        out.print(f"wrote {target / runfolder.XYLO_ENERGY}")
        return
    with Bars(quiet) as bars:
        res = run_energy(target, profiles=profile, profiles_file=profiles_file, samples=samples, data=data,
                         data_dir=data_dir, inputs=inputs, max_memory_gb=max_memory_gb, max_steps=max_steps,
                         progress=bars.callback("energy (steps)"))
    _table(md.layer_rows(res), f"operations per sample ({res['network']}, T={res['time_steps']}, "
           f"{res['samples']} samples)", {"layer": "layer", "neurons": "neurons", "SynOps": "SynOps",
                                          "effective MACs": "effective\nMACs", "dense ANN MACs": "dense ANN\nMACs",
                                          "updates active": "updates\nactive", "spikes routed": "spikes\nrouted",
                                          "firing rate": "firing\nrate", "input sparsity": "input\nsparsity"})
    _table(md.energy_console_rows(res), "energy per sample: two estimates, each with its own validation status",
           {"profile": "profile", "kind": "kind", md.PER_OP: "per-op\n(core\ndynamic)", "per-op status": "status",
            md.SYSTEM: "system\n(+ idle,\nhost)", "system status": "status"})
    m = res["loihi_mapping"]
    out.print(f"{md.ESTIMATES_NOTE}\nLoihi 1 mapping: {m['total_cores']} cores, {m['chips']} chip(s).\n"
              f"{md.LOIHI2_STATEMENT}\n{md.ANN_STATEMENT}\nwrote {runfolder.model_nir(target).parent / runfolder.ENERGY}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="run folder"),
           compare: Optional[Path] = typer.Option(
               None, help="folder whose run folders are compared on accuracy vs energy (default: RUN's parent)"),
           quiet: bool = _quiet()):
    """Write report.md and a self-contained report.html (plots inline) from the run folder's reports."""
    from spikeport.report import html, markdown

    if not Path(run_dir).is_dir():
        raise SpikeportError(f"{run_dir}: run folder not found")
    if compare is not None and not compare.is_dir():
        raise SpikeportError(f"{compare}: --compare folder not found")
    with Bars(quiet) as bars:
        tick = bars.callback("writing report.md, report.html")
        paths = [markdown.write(run_dir, compare)]
        tick(1, 2)
        paths.append(html.write(run_dir, compare))
        tick(2, 2)
    for path in paths:
        out.print(f"wrote {path}")


@app.command()
def demo(out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="run folder"),
         epochs: int = typer.Option(20, min=1), samples: Optional[int] = typer.Option(None, help="test samples"),
         quiet: bool = _quiet()):
    """The whole path on digits: train -> export -> Lava + emulator parity -> energy -> report."""
    from spikeport.export.nir_export import export_run
    from spikeport.pipeline import energy as run_energy
    from spikeport.pipeline import parity as run_parity
    from spikeport.report import html, markdown
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train as run_train

    t0 = time.time()
    cfg = TrainConfig(data="digits", epochs=epochs)
    with Bars(quiet) as bars:
        tick = bars.callback("1/4 training CUBA-LIF MLP on digits (QAT, batches)")
        run_train(cfg, out_dir, progress=lambda _s, done, total: tick(done, total))
        bars.callback("2/4 exporting model.nir")(0, 1)
        export_run(out_dir)
        bars.update("2/4 exporting model.nir", 1, 1)
        run_parity(out_dir, backend="lava,emulator", samples=samples,
                   progress=lambda side, done, total: bars.update(f"3/4 parity: {side}", done, total))
        run_energy(out_dir, samples=samples, progress=bars.callback("4/4 counting operations and pricing energy"))
    path, page = markdown.write(out_dir), html.write(out_dir)
    _summary(markdown.summary_rows(markdown.load_reports(out_dir)), f"spikeport demo ({time.time() - t0:.0f} s)")
    out.print(f"reports: {out_dir}/parity.json, {out_dir}/energy.json, {path}, {page}")


def main() -> None:
    """Run the command; every way it can end is one exit code (see the module docstring)."""
    exit_on_errors(app, ParityFailure, SpikeportError, LavaRuntimeError)


if __name__ == "__main__":
    main()
