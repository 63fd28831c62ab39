"""examples/sweep_experts.py runs, writes its PNG, and plots what the moesim command computes.

Run by ctest (python.example) with PYTHONPATH=<build>/python, MOESIM_BINARY and MOESIM_SOURCE_DIR.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("MOESIM_SOURCE_DIR", os.getcwd())
MOESIM = os.environ.get("MOESIM_BINARY", os.path.join(SOURCE, "build", "moesim"))
SCENARIO = os.path.join(SOURCE, "scenarios", "apple2024", "moe-1.6b-64e.textproto")


class ExampleTest(unittest.TestCase):
    def test_sweep_experts(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("matplotlib is not installed (python3-matplotlib): example not run")
        with tempfile.TemporaryDirectory() as d:
            png = os.path.join(d, "experts.png")
            subprocess.run([sys.executable, os.path.join(SOURCE, "examples", "sweep_experts.py"),
                            "--out", png, "--jobs", "2"], check=True, capture_output=True)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertGreater(os.path.getsize(png), 10000)
            with open(os.path.join(d, "experts.json"), encoding="utf-8") as f:
                data = json.load(f)
        clusters = data["clusters"]
        self.assertEqual(sorted(clusters), ["tpu-v4:8x8x4", "tpu-v5e:16x16"])
        checked = 0
        for cluster, c in clusters.items():
            self.assertEqual(c["points"], 15)
            plotted = sum(len(p) for p in c["lines"].values())
            self.assertEqual(plotted + c["not_plotted"], c["points"])
            self.assertGreater(plotted, 5)
            # Every line's first and last point, simulated again by the moesim command.
            for ep, pts in c["lines"].items():
                for experts, step in (pts[0], pts[-1]):
                    out = subprocess.run(
                        [MOESIM, "simulate", SCENARIO, "--set", "cluster.topology=" + cluster,
                         "--set", "sharding.mesh.data=%d" % (256 // int(ep)),
                         "--set", "model.moe.num_experts=%d" % experts,
                         "--set", "sharding.mesh.expert=" + ep, "--json", "-"],
                        capture_output=True, text=True, check=True).stdout
                    self.assertEqual(json.loads(out)["step_time_s"], step)
                    checked += 1
        self.assertGreaterEqual(checked, 8)


if __name__ == "__main__":
    unittest.main()
