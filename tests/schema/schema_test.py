"""Checks every JSON file moesim writes for the shipped inputs against docs/schema.md.

The golden files (tests/golden/{simulate,cost,validate}, the CLI's output for every shipped
scenario and validation set), the calibration and real-validation files shipped under
validation/measurements, and the JSON or CSV the CLI writes here (topo, sweep, collective,
import hf, calibrate, plan --objective tokens_in_budget, validate-real when moesim-real is
built) are walked field by field: every field must be documented in docs/schema.md with a matching type, a unit
and a presence, and every field documented as always present must be there. The document is
the second method: it is written by hand, not generated from the writer.

Usage: python3 schema_test.py SOURCE_DIR MOESIM_BINARY
"""
import csv
import glob
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = None
MOESIM = None


def parse_schema_doc(path):
    """{kind: {field path: (type, unit, presence)}}, in document order, from the tables that
    follow a `<!-- schema: KIND -->` marker."""
    kinds = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"<!-- schema: (\w+) -->", line.strip())
            if m:
                current = kinds.setdefault(m.group(1), {})
                continue
            if current is None:
                continue
            if not line.startswith("|"):
                if line.strip() and not line.startswith("|"):
                    current = None if line.startswith("#") else current
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 5 or cells[0] in ("field", "---") or set(cells[0]) <= set("-"):
                continue
            field = cells[0].strip("`")
            current[field] = (cells[1], cells[2], cells[3])
    return kinds


def json_type_ok(value, declared):
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    simple = {
        "number": is_num,
        "integer": is_int,
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer or null": lambda v: v is None or is_int(v),
        "number or null": lambda v: v is None or is_num(v),
        "string or null": lambda v: v is None or isinstance(v, str),
    }
    if declared in simple:
        return simple[declared](value)
    m = re.match(r"array of (\w+(?: or null)?)$", declared)
    if m:
        return isinstance(value, list) and all(simple[m.group(1)](v) for v in value)
    raise AssertionError("docs/schema.md: unknown type %r" % declared)


def flatten(doc_fields, value, path="", out=None):
    """[(documented-style path, value)] for every leaf; objects documented with `.*` are maps."""
    if out is None:
        out = []
    if isinstance(value, dict):
        is_map = any(f.startswith(path + ".*") for f in doc_fields) if path else False
        for k, v in value.items():
            key = "*" if is_map else k
            flatten(doc_fields, v, (path + "." if path else "") + key, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for v in value:
            flatten(doc_fields, v, path + "[]", out)
    elif isinstance(value, list) and not value and (path + "[]") in {
            f[:i + 2] for f in doc_fields for i in range(len(f)) if f.startswith("[]", i)}:
        pass  # an empty array of objects
    else:
        out.append((path, value))
    return out


class SchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = parse_schema_doc(os.path.join(SOURCE_DIR, "docs", "schema.md"))

    def check_object(self, kind, obj, where, every_field=True):
        """every_field=False: a file an earlier version wrote, before later fields were added."""
        fields = self.doc[kind]
        seen = set()
        for path, value in flatten(fields, obj):
            self.assertIn(path, fields, "%s: field %s is not documented in docs/schema.md (%s)"
                          % (where, path, kind))
            declared, unit, presence = fields[path]
            self.assertTrue(unit, "%s: %s has no unit" % (kind, path))
            self.assertIn(presence, ("always", "optional"), "%s: %s" % (kind, path))
            self.assertTrue(json_type_ok(value, declared),
                            "%s: %s = %r is not %s" % (where, path, value, declared))
            seen.add(path)
        for path, (_, _, presence) in fields.items():
            if presence == "always" and every_field:
                self.assertIn(path, seen, "%s: documented field %s is missing" % (where, path))
        return seen

    def check_golden(self, kind, expected_files):
        files = sorted(glob.glob(os.path.join(SOURCE_DIR, "tests", "golden", kind, "**", "*.json"),
                                 recursive=True))
        self.assertGreaterEqual(len(files), expected_files)
        seen = set()
        for f in files:
            with open(f, encoding="utf-8") as fh:
                seen |= self.check_object(kind, json.load(fh), os.path.relpath(f, SOURCE_DIR))
        return seen

    def test_document_has_every_section(self):
        for kind in ("simulate", "cost", "validate", "sweep", "budget", "topo", "calibrate",
                     "calibrate_gemm", "calibrate_published", "validate_real"):
            self.assertIn(kind, self.doc)
            self.assertGreater(len(self.doc[kind]), 5, kind)

    def test_simulate_goldens(self):
        seen = self.check_golden("simulate", 40)
        self.assertEqual(set(self.doc["simulate"]) - seen, set(), "documented, never written")

    def test_cost_goldens(self):
        seen = self.check_golden("cost", 40)
        self.assertEqual(set(self.doc["cost"]) - seen, set(), "documented, never written")

    def test_validate_goldens(self):
        seen = self.check_golden("validate", 6)
        self.assertEqual(set(self.doc["validate"]) - seen, set(), "documented, never written")

    def test_topo_json(self):
        names = ["tpu-v5e:16x16", "dgx-h100:32"]
        names += sorted(glob.glob(os.path.join(SOURCE_DIR, "topologies", "*.textproto")))
        seen = set()
        for name in names:
            args = [MOESIM, "topo", name, "--json", "-"]
            if name == "tpu-v5e:16x16":
                args += ["--placement", "data,expert,model=4,64,1"]
            out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
            seen |= self.check_object("topo", json.loads(out), "moesim topo " + name)
        self.assertEqual(set(self.doc["topo"]) - seen, set(), "documented, never written")

    def test_collective_json(self):
        runs = [["--op", "all_reduce", "--topology", "dgx-h100:2", "--group", "16",
                 "--bytes", "1M:4M"],
                ["--op", "all_to_all", "--topology", "tpu-v5e:4x4", "--group", "x,y",
                 "--bytes", "1M:1M", "--network", "flow", "--link-efficiency", "ici=0.9"]]
        seen = set()
        for args in runs:
            out = subprocess.run([MOESIM, "collective", *args, "--json", "-"],
                                 capture_output=True, text=True, check=True).stdout
            seen |= self.check_object("collective", json.loads(out), "moesim collective")
        self.assertEqual(set(self.doc["collective"]) - seen, set(), "documented, never written")
        seen = set()
        for topology, ep in (("dgx-h100:4", "8,16"), ("h800-cx7-8x8", "16,64")):
            topo = topology if ":" in topology else os.path.join(
                SOURCE_DIR, "topologies", topology + ".textproto")
            out = subprocess.run([MOESIM, "collective", "--op", "dispatch", "--topology", topo,
                                  "--ep", ep, "--json", "-"],
                                 capture_output=True, text=True, check=True).stdout
            seen |= self.check_object("dispatch", json.loads(out), "moesim collective dispatch")
        self.assertEqual(set(self.doc["dispatch"]) - seen - {"link_efficiency_by_kind.*"}, set(),
                         "documented, never written")

    def test_import_hf_json(self):
        configs = sorted(glob.glob(os.path.join(SOURCE_DIR, "tests", "data", "hf", "*.json")))
        self.assertGreaterEqual(len(configs), 9)
        seen = set()
        for config in configs:
            out = subprocess.run([MOESIM, "import", "hf", config, "--out", os.devnull,
                                  "--json", "-"], capture_output=True, text=True, check=True).stdout
            seen |= self.check_object("import_hf", json.loads(out), "moesim import hf " + config)
        self.assertEqual(set(self.doc["import_hf"]) - seen, set(), "documented, never written")

    def test_sweep_csv(self):
        scenario = os.path.join(SOURCE_DIR, "scenarios", "apple2024", "moe-1.6b-64e.textproto")
        out = subprocess.run(
            [MOESIM, "sweep", scenario, "--vary", "model.moe.num_experts=16,64",
             "--vary", "sharding.mesh.expert=16,12", "--vary", "sharding.mesh.data=16",
             "--csv", "-", "--jobs", "2"],
            capture_output=True, text=True, check=True).stdout
        rows = list(csv.reader(io.StringIO(out)))
        varied = ["model.moe.num_experts", "sharding.mesh.expert", "sharding.mesh.data"]
        self.assertEqual(rows[0], varied + list(self.doc["sweep"]))
        statuses = set()
        for row in rows[1:]:
            record = dict(zip(rows[0], row))
            statuses.add(record["status"])
            for field, (declared, _, presence) in self.doc["sweep"].items():
                cell = record[field]
                if cell == "":
                    self.assertTrue(presence == "optional" or declared == "string", field)
                    continue
                value = {"number": float, "boolean": lambda c: {"true": True, "false": False}[c],
                         "string": str}[declared](cell)
                self.assertTrue(json_type_ok(value, declared), field)
        self.assertIn("ok", statuses)
        self.assertIn("invalid", statuses)  # expert 12 does not divide the experts

    def test_sweep_json(self):
        scenario = os.path.join(SOURCE_DIR, "scenarios", "apple2024", "moe-1.6b-64e.textproto")
        out = subprocess.run(
            [MOESIM, "sweep", scenario, "--vary", "model.moe.num_experts=16,64,256",
             "--vary", "sharding.mesh.expert=16,12", "--vary", "sharding.mesh.data=16",
             "--json", "-", "--jobs", "2"],
            capture_output=True, text=True, check=True).stdout
        rows = json.loads(out)
        varied = ["model.moe.num_experts", "sharding.mesh.expert", "sharding.mesh.data"]
        self.assertEqual(len(rows), 6)
        statuses = set()
        for i, row in enumerate(rows):
            self.assertEqual(list(row), varied + list(self.doc["sweep"]))
            statuses.add(row["status"])
            for field, (declared, unit, presence) in self.doc["sweep"].items():
                self.assertTrue(unit, field)
                if row[field] is None:  # figures of a point that was not simulated
                    self.assertEqual(presence, "optional", field)
                    self.assertEqual(row["status"], "invalid", field)
                    continue
                self.assertTrue(json_type_ok(row[field], declared),
                                "sweep row %d: %s = %r is not %s" % (i, field, row[field], declared))
        self.assertEqual(statuses, {"ok", "invalid", "does_not_fit"})

    def test_plan_budget_json(self):
        # A small dense model, two expert counts, one strategy, no pipeline: a few seconds.
        scenario = os.path.join(SOURCE_DIR, "scenarios", "apple2024", "dense-85m.textproto")
        out = subprocess.run(
            [MOESIM, "plan", scenario, "--objective", "tokens_in_budget", "--experts", "8,16",
             "--strategies", "APPLE_3D", "--max-pipeline", "1", "--jobs", "2", "--top", "3",
             "--json", "-"],
            capture_output=True, text=True, check=True).stdout
        rows = json.loads(out)
        self.assertEqual(len(rows), 3)  # experts {8, 16} x every {2, 4}, the first 3
        order = list(self.doc["budget"])
        seen = set()
        for i, row in enumerate(rows):
            self.assertEqual(row["rank"], i + 1)
            # Keys in the documented order; a candidate without a feasible sharding has, of the
            # sweep figures, only status.
            self.assertEqual(list(row), [f for f in order if f in row])
            seen |= self.check_object("budget", row, "moesim plan --json row %d" % (i + 1))
            if row["status"] == "no_feasible_sharding":
                self.assertIsNone(row["configuration"])
                self.assertEqual(row["tokens"], 0)
            else:
                # tokens = budget / step time x batch tokens, the same batch for every row.
                batch = row["tokens"] * row["step_time_s"] / row["budget_s"]
                self.assertAlmostEqual(batch, 24576, delta=1e-6 * 24576)
        self.assertGreater(rows[0]["tokens"], 0)
        self.assertEqual(len({(r["dense_params"], r["budget_s"]) for r in rows}), 1)
        self.assertEqual(set(self.doc["budget"]) - seen, set(), "documented, never written")
        # To a file, the table is still printed.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "plan.json")
            table = subprocess.run(
                [MOESIM, "plan", scenario, "--objective", "tokens_in_budget", "--experts", "8",
                 "--strategies", "APPLE_3D", "--max-pipeline", "1", "--jobs", "2", "--top", "1",
                 "--json", path], capture_output=True, text=True, check=True).stdout
            self.assertTrue(table.startswith("dense: "), table)
            with open(path, encoding="utf-8") as f:
                self.assertEqual(len(json.load(f)), 1)

    def measurements(self, name):
        files = sorted(glob.glob(os.path.join(SOURCE_DIR, "validation", "measurements", "*", "*",
                                              name)))
        self.assertGreater(len(files), 0, name)
        return files

    def test_calibrate_json(self):
        # The shipped files (written by earlier versions), and calibrate run again on each
        # shipped set of bench files.
        for f in self.measurements("calibration.json"):
            with open(f, encoding="utf-8") as fh:
                self.check_object("calibrate", json.load(fh), os.path.relpath(f, SOURCE_DIR),
                                  every_field=False)
        seen = set()
        with tempfile.TemporaryDirectory() as tmp:
            for folder in sorted({os.path.dirname(f) for f in self.measurements("bench-*.json")}):
                benches = sorted(glob.glob(os.path.join(folder, "bench-*.json")))
                out = subprocess.run([MOESIM, "calibrate", *benches, "--cores", "2", "--out",
                                      os.path.join(tmp, "cpu.textproto"), "--json", "-"],
                                     capture_output=True, text=True, check=True).stdout
                seen |= self.check_object("calibrate", json.loads(out), "moesim calibrate " + folder)
        self.assertEqual(set(self.doc["calibrate"]) - seen, set(), "documented, never written")

    def test_calibrate_gemm_json(self):
        gemm = os.path.join(SOURCE_DIR, "validation", "data", "gemm")
        # The tables of built-in chips, and one on a base without an FP8 peak (fp8 not fitted).
        runs = [[os.path.join(gemm, "h100.csv")], [os.path.join(gemm, "b200.csv")],
                [os.path.join(gemm, "h100.csv"), "--base", "a100-sxm", "--folds", "2"]]
        seen = set()
        for args in runs:
            out = subprocess.run([MOESIM, "calibrate", "--gemm-table", *args, "--json", "-"],
                                 capture_output=True, text=True, check=True).stdout
            seen |= self.check_object("calibrate_gemm", json.loads(out),
                                      "moesim calibrate --gemm-table " + " ".join(args))
        self.assertEqual(set(self.doc["calibrate_gemm"]) - seen, set(),
                         "documented, never written")

    def test_calibrate_published_json(self):
        # Small sets and a coarse grid: seconds, not the full fit.
        runs = [[os.path.join(SOURCE_DIR, "validation", "published.csv"), "--rule", "median"],
                [os.path.join(SOURCE_DIR, "validation", "maxtext-v4-dcn.csv"),
                 "--scan", "elementwise_efficiency=1,0.5"]]
        seen = set()
        for args in runs:
            out = subprocess.run([MOESIM, "calibrate", "--published", *args, "--grid", "3",
                                  "--folds", "2", "--json", "-"],
                                 capture_output=True, text=True, check=True).stdout
            fits = json.loads(out)
            self.assertIsInstance(fits, list)
            self.assertGreater(len(fits), 0)
            seen |= self.check_object("calibrate_published", fits, "moesim calibrate --published")
        self.assertEqual(set(self.doc["calibrate_published"]) - seen, set(),
                         "documented, never written")

    def test_validate_real_json(self):
        # The shipped results (written by earlier versions), and validate-real run on the CI
        # configurations when moesim-real (built next to moesim) and mpirun are there: seconds
        # on the CPU backend.
        seen = set()
        for f in self.measurements("results.json"):
            with open(f, encoding="utf-8") as fh:
                seen |= self.check_object("validate_real", json.load(fh),
                                          os.path.relpath(f, SOURCE_DIR), every_field=False)
        real = os.path.join(os.path.dirname(os.path.abspath(MOESIM)), "moesim-real")
        if os.access(real, os.X_OK) and shutil.which("mpirun"):
            profile = sorted(self.measurements("cpu.textproto"))[-1]
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run(
                    [MOESIM, "validate-real",
                     os.path.join(SOURCE_DIR, "validation", "real", "ci.csv"), "--profile",
                     profile, "--repeats", "1", "--steps", "5", "--out", tmp, "--json", "-"],
                    capture_output=True, text=True, check=True).stdout
                written = json.loads(out)
                with open(os.path.join(tmp, "results.json"), encoding="utf-8") as fh:
                    self.assertEqual(json.load(fh), written)
                seen |= self.check_object("validate_real", written, "moesim validate-real")
            self.assertEqual(set(self.doc["validate_real"]) - seen, set(),
                             "documented, never written")
        # Without moesim-real the shipped results (older, without the later fields) are all
        # there is; tests/calib/calib_schema_test.cc checks the writer's every field.


if __name__ == "__main__":
    SOURCE_DIR, MOESIM = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1])
