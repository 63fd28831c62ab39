#!/usr/bin/env python3
"""Step time of one MoE model by expert count and mesh shape, on two clusters.

Sweeps Du et al. 2024's 1.6B backbone (scenarios/apple2024/moe-1.6b-64e.textproto) over expert
counts and (data, expert) mesh shapes of 256 chips, on a TPU v5e pod slice and on a TPU v4
slice of the same size, and plots step time against the expert count, one line per mesh shape
and one panel per cluster. Points the model rejects (the expert axis does not divide the
experts) or that do not fit in memory are left out of the lines.

    PYTHONPATH=build/python python3 examples/sweep_experts.py --out sweep_experts.png

Writes the PNG and, beside it, the plotted points as JSON (the same name, .json).
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

import moesim  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, "..", "scenarios", "apple2024", "moe-1.6b-64e.textproto")
CLUSTERS = ["tpu-v5e:16x16", "tpu-v4:8x8x4"]  # 256 chips each
EXPERTS = [16, 32, 64, 128, 256]
EXPERT_AXIS = [16, 32, 64]  # the data axis is 256 / expert axis


def sweep_cluster(cluster, jobs):
    """{expert axis: [(experts, step_time_s), ...]} over the points that ran and fit."""
    sc = moesim.Scenario.from_file(SCENARIO).set("cluster.topology", cluster)
    rows = []
    for ep in EXPERT_AXIS:
        rows += moesim.sweep(sc.copy().set("sharding.mesh.data", 256 // ep),
                             vary={"model.moe.num_experts": EXPERTS,
                                   "sharding.mesh.expert": [ep]},
                             jobs=jobs)
    lines = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        ep = int(r["sharding.mesh.expert"])
        lines.setdefault(ep, []).append((int(r["model.moe.num_experts"]), r["step_time_s"]))
    return lines, rows


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="sweep_experts.png", help="PNG to write")
    ap.add_argument("--jobs", type=int, default=None, help="threads (default: all cores)")
    args = ap.parse_args(argv)

    fig, axes = plt.subplots(1, len(CLUSTERS), figsize=(11, 4.2), sharey=True)
    data = {"scenario": os.path.relpath(SCENARIO), "clusters": {}}
    for ax, cluster in zip(axes, CLUSTERS):
        lines, rows = sweep_cluster(cluster, args.jobs)
        data["clusters"][cluster] = {
            "lines": {str(ep): pts for ep, pts in sorted(lines.items())},
            "points": len(rows),
            "not_plotted": sum(1 for r in rows if r["status"] != "ok"),
        }
        for ep, pts in sorted(lines.items()):
            ax.plot([e for e, _ in pts], [t for _, t in pts], marker="o",
                    label="data %d x expert %d" % (256 // ep, ep))
        ax.set_xscale("log", base=2)
        ax.set_xticks(EXPERTS, [str(e) for e in EXPERTS])
        ax.set_title(cluster)
        ax.set_xlabel("experts per MoE layer")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("step time (s)")
    fig.suptitle("MoE 1.6B backbone: step time by experts and mesh (moesim, analytical network)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
