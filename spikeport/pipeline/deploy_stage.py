"""``spikeport deploy``: run a graph alone on one backend over a test split (or ``.npy`` inputs) and
report its accuracy and throughput."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from spikeport.core.readout import classifies, predict_net
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.measure import parity as parity_mod
from spikeport.nirfmt import runnet
from spikeport.pipeline import limits, streaming
from spikeport.pipeline.backends import BackendRun, parse_backends, run_backend
from spikeport.pipeline.inputs import graph_inputs


def deploy(nir_path: str | Path, *, data: str, data_dir: str | None = None, backend: str = "lava",
           samples: int | None = None, out: str | Path | None = None, seed: int = 0,
           inputs: str | Path | None = None, labels: str | Path | None = None, timeout_s: float | None = None,
           max_memory_gb: float | None = None, max_steps: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Run ``model.nir`` (or a run folder: imported from a netx file, or a trained sigma-delta run and its
    ``model.net``) alone on a backend over the test split
    (or ``inputs``); write deploy.json (+ predictions.npz). Without labels ``accuracy`` is None; a
    regression output's values per step go to predictions.npz (``values`` [N, T, n_out]). Samples run in
    chunks sized to the memory budget (:mod:`spikeport.pipeline.limits`); a network over budget is
    refused before it runs. ``progress(done, total)`` is called after each chunk of samples."""
    netx_run = Path(nir_path).is_dir() and runnet.is_netx_run(nir_path)
    net = runnet.load_run(nir_path) if netx_run else runnet.load_graph(nir_path)
    b, budget = parse_backends(backend)[0], limits.Budget.make(max_memory_gb, max_steps)
    check = lambda n: limits.plan_chunk(net, n, [b], budget, "deploy")  # noqa: E731  (before encoding)
    netx_options = None
    if netx_run:
        from spikeport.pipeline.reference import NetxReference

        ref = NetxReference(nir_path, net, inputs=inputs, labels=labels)
        x_int, y = ref.inputs(net, samples, check)
        netx_file, netx_options = Path(nir_path) / runfolder.NETX_SOURCE, ref.options
    else:
        x_int, y, _ = graph_inputs(net, nir_path, data, data_dir, samples, seed, inputs, labels, check)
        graph = runnet.graph_file(nir_path) if Path(nir_path).is_dir() else Path(nir_path)
        netx_file = graph.with_name(runfolder.MODEL_NETX)  # the netx backend runs the export beside the graph
    chunk = check(x_int.shape[1])
    if b == "netx" and not netx_file.is_file():
        raise SpikeportError(f"{netx_file}: file not found (the netx backend runs `spikeport export RUN --netx`'s file)")
    values = []

    def one(xs):
        res = run_backend(net, xs, b, record="all" if net.regression else "output",
                          timeout_s=timeout_s, netx_file=netx_file, netx_options=netx_options)
        if net.regression:
            values.append(res.values)
        return res

    run = BackendRun(*streaming.run_chunks(one, x_int, chunk, progress))
    all_values = np.concatenate(values, axis=1) if net.regression else None  # [T, B, n_out]
    classify = classifies(net)
    pred = predict_net(net, run.spikes, all_values) if classify else np.zeros(x_int.shape[1], np.int64)
    result = {"backend": backend, "graph": str(nir_path), "network": net.describe(), "samples": int(len(pred)),
              "accuracy": None if y is None or not classify else parity_mod.accuracy(pred, y),
              "output": ((f"classes ({net.meta.get('readout')} readout: the output's value at the last step; "
                          "predictions.npz 'values')") if net.regression else "classes") if classify
              else "values per step (predictions.npz 'values')",
              "samples_per_s": round(run.samples_per_s, 2), "seconds": round(run.seconds, 3)}
    if out:
        out = Path(out)
        fileio.write_json(out / runfolder.DEPLOY, result)
        arrays = {"predictions": pred, "output_counts": (run.spikes[-1] != 0).sum(0),
                  **({} if y is None else {"labels": y})}
        if net.regression:
            arrays["values"] = all_values.transpose(1, 0, 2)
        fileio.write_npz(out / runfolder.PREDICTIONS, arrays)
    return result
