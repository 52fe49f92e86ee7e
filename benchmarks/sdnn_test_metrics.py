"""Test-set accuracies of a sigma-delta run: the float, QAT and Loihi-integer forwards on every test image,
with the messages each population sends (``RUN/test_metrics.json``; of a LIF run: the accuracies alone, its
inputs encoded as its training loop encodes them). A run trained with a validation split (``validation > 0``)
chose its hyper-parameters on that split and scored it in metrics.json; this scores the chosen checkpoint once
on the test set. Usage: ``python benchmarks/sdnn_test_metrics.py RUN...``"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def test_metrics(run: Path) -> dict:
    from spikeport.data import load_dataset
    from spikeport.train import checkpoint, loop, sd_loop

    model, cfg, _ = checkpoint.load(run)
    evaluate = sd_loop.evaluate if cfg.neuron == "sigma-delta" else loop.evaluate  # a LIF run: accuracies alone
    ds = load_dataset(cfg.data, cfg.data_dir, seed=cfg.seed, n_bins=cfg.time_steps)
    res = {"split": f"test ({len(ds.y_test)} images)"}
    for key, kw in (("float", {"integer": False}), ("qat", {"integer": False, "qat": True}),
                    ("quantized", {"integer": True})):
        ev = evaluate(model, ds.x_test, ds.y_test, cfg, **kw)
        res[f"{key}_accuracy"] = ev["accuracy"]
        if key == "quantized" and "messages" in ev:
            res["messages_per_sample"] = [round(m, 2) for m in ev["messages"]]
            res["payload_bits"] = ev["payload_bits"]
    (run / "test_metrics.json").write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(arg, test_metrics(Path(arg)))
