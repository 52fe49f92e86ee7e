"""Plot the f-I curve of spikeport's discrete CUBA-LIF: the smooth curve whose derivative ``firate``
uses as its surrogate gradient, the analytic staircase and the simulated neuron (float and Loihi
integers). Writes docs/firate_curve.png.

    python examples/firate_curve.py [--beta-syn 0.5] [--beta-mem 0.9] [--theta 1.0] [--smooth 0.1]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beta-syn", type=float, default=0.5)
    ap.add_argument("--beta-mem", type=float, default=0.9)
    ap.add_argument("--theta", type=float, default=1.0)
    ap.add_argument("--smooth", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "firate_curve.png")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikeport.train.methods.firate import fi_curve

    rheobase = (1 - args.beta_syn) * (1 - args.beta_mem) * args.theta  # I at which j = 1
    cur = np.linspace(-0.5 * rheobase, 12 * rheobase, 1500)
    c = fi_curve(cur, args.beta_syn, args.beta_mem, args.theta, args.smooth)
    fig, (ax, axd) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax.plot(cur, c.staircase, color="0.6", lw=3, label="staircase 1/(floor(L)+1) (analytic)")
    ax.plot(cur, c.simulated, color="k", lw=1, label="simulated, core.neuron.cuba_lif_step")
    ax.plot(cur, c.simulated_loihi, color="tab:orange", lw=1, ls="--", label="simulated, core.loihi.lif_step")
    ax.plot(cur, c.smooth, color="tab:blue", lw=1.5, label=f"smooth 1/(1+L_s), gamma={args.smooth:g}")
    ax.axvline(rheobase, color="0.8", lw=0.8)
    ax.set_ylabel("rate (spikes / step)")
    ax.set_title(f"discrete CUBA-LIF f-I curve (beta_syn={args.beta_syn:g}, beta_mem={args.beta_mem:g}, "
                 f"theta={args.theta:g})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    axd.plot(cur, c.smooth_grad, color="tab:blue", label="dr_s/dI (firate surrogate)")
    axd.plot(cur[1:], np.diff(c.smooth) / np.diff(cur), color="k", ls=":", label="finite difference of r_s")
    axd.set_xlabel("constant input current I per step (float units; vertical line: rheobase)")
    axd.set_ylabel("dr/dI")
    axd.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
