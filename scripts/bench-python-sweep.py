#!/usr/bin/env python3
"""Times one 1,000-point sweep through the Python module and through `moesim sweep`.

Both run the same grid (10 capacity factors x 10 layer counts x 10 expert counts of the default
MoE 1.6B scenario) on the same number of threads, alternately, several times; prints each
run's seconds and the ratio Python / command. Not a test: timings depend on the machine.

    PYTHONPATH=build/python python3 scripts/bench-python-sweep.py [--jobs N] [--repeats R]
"""
import argparse
import os
import subprocess
import tempfile
import time

import moesim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "scenarios", "apple2024", "moe-1.6b-64e.textproto")
VARY = {"model.moe.capacity_factor": ["%g" % (1.0 + 0.1 * i) for i in range(10)],
        "model.num_layers": [str(8 + 2 * i) for i in range(10)],
        "model.moe.num_experts": [str(64 * (i + 1)) for i in range(10)]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--moesim", default=os.path.join(ROOT, "build", "moesim"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cmd = [args.moesim, "sweep", SCENARIO, "--csv", os.path.join(d, "sweep.csv"),
               "--jobs", str(args.jobs)]
        for path, values in VARY.items():
            cmd += ["--vary", path + "=" + ",".join(values)]
        ratios = []
        for rep in range(args.repeats):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            t_cli = time.perf_counter() - t
            t = time.perf_counter()
            rows = moesim.sweep(moesim.Scenario.from_file(SCENARIO), vary=VARY, jobs=args.jobs)
            t_py = time.perf_counter() - t
            ratios.append(t_py / t_cli)
            print("run %d: %d points  moesim sweep %.3f s  Python %.3f s  ratio %.2f"
                  % (rep + 1, len(rows), t_cli, t_py, t_py / t_cli))
    ratios.sort()
    print("median ratio %.2f, worst %.2f" % (ratios[len(ratios) // 2], ratios[-1]))


if __name__ == "__main__":
    main()
