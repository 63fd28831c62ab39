"""The moesim Python module against the moesim command: the same inputs give the same output.

Run by ctest (python.api) with PYTHONPATH=<build>/python, MOESIM_BINARY=<build>/moesim and
MOESIM_SOURCE_DIR=<source>; by hand:
  PYTHONPATH=build/python MOESIM_BINARY=build/moesim python3 -m unittest tests/python/test_moesim.py
"""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

import moesim

SOURCE = os.environ.get("MOESIM_SOURCE_DIR", os.getcwd())
MOESIM = os.environ.get("MOESIM_BINARY", os.path.join(SOURCE, "build", "moesim"))
SCENARIO = os.path.join(SOURCE, "scenarios", "apple2024", "moe-1.6b-64e.textproto")
DENSE = os.path.join(SOURCE, "scenarios", "apple2024", "dense-1.6b.textproto")


def cli(*args):
    return subprocess.run([MOESIM, *args], capture_output=True, text=True, check=True).stdout


def cli_error(*args):
    """The message of a command that must fail with exit code 2 (bad input)."""
    p = subprocess.run([MOESIM, *args], capture_output=True, text=True)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    prefix = "moesim %s: " % args[0]
    text = p.stderr
    return text[len(prefix):] if text.startswith(prefix) else text


class SimulateTest(unittest.TestCase):
    def test_default_scenario_equals_cli(self):
        self.assertEqual(moesim.simulate(moesim.Scenario()).to_dict(),
                         json.loads(cli("simulate", "--json", "-")))

    def test_file_with_overrides_equals_cli(self):
        sc = (moesim.Scenario.from_file(SCENARIO).set("model.moe.num_experts", 32)
              .set("sharding.mesh.data", 8).set("sharding.mesh.expert", 32))
        r = moesim.simulate(sc)
        expected = json.loads(cli("simulate", SCENARIO, "--set", "model.moe.num_experts=32",
                                  "--set", "sharding.mesh.data=8",
                                  "--set", "sharding.mesh.expert=32", "--json", "-"))
        self.assertEqual(r.to_dict(), expected)
        self.assertEqual(r.step_time_s, expected["step_time_s"])
        self.assertEqual(r.mfu, expected["mfu"])
        self.assertEqual(r.tokens_per_s, expected["tokens_per_s"])
        self.assertEqual(r.fits, expected["memory"]["fits"])

    def test_flow_network_equals_cli(self):
        sc = moesim.Scenario.from_file(DENSE)
        self.assertEqual(moesim.simulate(sc, network="flow").to_dict(),
                         json.loads(cli("simulate", DENSE, "--network", "flow", "--json", "-")))

    def test_from_text_equals_from_file(self):
        with open(SCENARIO, encoding="utf-8") as f:
            text = f.read()
        a = moesim.simulate(moesim.Scenario.from_file(SCENARIO)).to_dict()
        b = moesim.simulate(moesim.Scenario.from_text(text)).to_dict()
        self.assertEqual(a["step_time_s"], b["step_time_s"])
        self.assertEqual(a["breakdown_s"], b["breakdown_s"])

    def test_set_is_chainable_and_bools_read_as_cli(self):
        sc = moesim.Scenario.from_file(DENSE)
        self.assertIs(sc.set("model.tie_embeddings", True), sc)
        self.assertEqual(sc.overrides, ["model.tie_embeddings=true"])
        expected = json.loads(cli("cost", DENSE, "--set", "model.tie_embeddings=true",
                                  "--json", "-"))
        self.assertEqual(moesim.cost(sc), expected)

    def test_ops_are_the_trace_of_the_cli(self):
        sc = moesim.Scenario.from_file(DENSE)
        r = moesim.simulate(sc)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "trace.json")
            cli("simulate", DENSE, "--trace", path)
            with open(path, encoding="utf-8") as f:
                events = [e for e in json.load(f)["traceEvents"] if e["ph"] == "X"]
        ops = r.ops
        self.assertEqual(len(ops), len(events))
        for op, ev in zip(ops, events):
            self.assertEqual(op["name"], ev["name"])
            self.assertEqual(op["program"], ev["pid"])
            self.assertEqual(op["stream_id"], ev["tid"])
            self.assertEqual(op["kind"], ev["cat"])
            self.assertAlmostEqual(op["start_s"] * 1e6, ev["ts"], delta=1e-6 * abs(ev["ts"]) + 1e-9)
        self.assertAlmostEqual(max(o["end_s"] for o in ops), r.step_time_s,
                               delta=1e-9 * r.step_time_s)

    def test_keep_ops_gives_the_same_timeline(self):
        sc = moesim.Scenario.from_file(DENSE)
        self.assertEqual(moesim.simulate(sc, keep_ops=True).ops, moesim.simulate(sc).ops)

    def test_threads_get_what_one_thread_gets(self):
        import threading
        sc = moesim.Scenario.from_file(SCENARIO)
        vary = {"sharding.mesh.data": [4, 16], "sharding.mesh.expert": [64, 16]}
        expected = moesim.sweep(sc, vary=vary, jobs=1)
        results = [None] * 3

        def run(i):
            results[i] = moesim.sweep(sc, vary=vary, jobs=1)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [expected] * 3)


class HuggingFaceTest(unittest.TestCase):
    """Scenario.from_hf and import_hf against `moesim import hf` on the shipped configs."""

    MIXTRAL = os.path.join(SOURCE, "tests", "data", "hf", "mixtral-8x7b.json")

    def test_from_hf_simulates_as_the_imported_file(self):
        out = os.path.join(tempfile.mkdtemp(), "mixtral.textproto")
        subprocess.run([MOESIM, "import", "hf", self.MIXTRAL, "--out", out], check=True,
                       capture_output=True)
        r = moesim.simulate(moesim.Scenario.from_hf(self.MIXTRAL)
                            .set("cluster.topology", "dgx-h100:8"))
        want = json.loads(cli("simulate", out, "--set", "cluster.topology=dgx-h100:8",
                              "--json", "-"))
        self.assertEqual(r.to_dict()["step_time_s"], want["step_time_s"])
        self.assertEqual(r.to_dict(), want | {"scenario": r.to_dict()["scenario"]})

    def test_import_hf_lists_what_the_command_lists(self):
        got = moesim.import_hf(self.MIXTRAL)
        self.assertEqual(got["family"], "mixtral")
        listing = json.loads(cli("import", "hf", self.MIXTRAL, "--out",
                                 os.path.join(tempfile.mkdtemp(), "m.textproto"), "--json", "-"))
        self.assertEqual([m["key"] for m in got["mapped"]],
                         [m["key"] for m in listing["mapped"]])
        self.assertEqual([m["key"] for m in got["not_mapped"]],
                         [m["key"] for m in listing["not_mapped"]])
        self.assertIn("model.moe.num_experts", [m["field"] for m in got["mapped"]])


class CostAndTopologyTest(unittest.TestCase):
    def test_cost_equals_cli(self):
        path = os.path.join(SOURCE, "scenarios", "artetxe2021", "moe-1.1t.textproto")
        self.assertEqual(moesim.cost(moesim.Scenario.from_file(path)),
                         json.loads(cli("cost", path, "--json", "-")))

    def test_topology_equals_cli(self):
        self.assertEqual(moesim.topology("tpu-v5e:16x16", placement="data,expert,model=4,64,1"),
                         json.loads(cli("topo", "tpu-v5e:16x16", "--placement",
                                        "data,expert,model=4,64,1", "--json", "-")))
        self.assertEqual(moesim.topology("dgx-h100:32"),
                         json.loads(cli("topo", "dgx-h100:32", "--json", "-")))


class ErrorTest(unittest.TestCase):
    def test_set_error_names_source_and_field(self):
        with self.assertRaises(moesim.ScenarioError) as ctx:
            moesim.simulate(moesim.Scenario().set("model.d_model", -4))
        e = ctx.exception
        self.assertEqual(e.message.strip(), cli_error("simulate", "--set", "model.d_model=-4").strip())
        self.assertEqual(e.file, "<default>")
        self.assertIsNone(e.line)
        self.assertEqual(e.field, "model.d_model")

    def test_file_error_names_file_line_and_field(self):
        with open(SCENARIO, encoding="utf-8") as f:
            lines = f.read().split("\n")
        n = next(i for i, l in enumerate(lines) if l.strip().startswith("d_model:"))
        lines[n] = lines[n].split("d_model:")[0] + "d_model: -8"
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.textproto")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines))
            with self.assertRaises(moesim.ScenarioError) as ctx:
                moesim.Scenario.from_file(path).validate()
            e = ctx.exception
            self.assertEqual(e.message.strip(), cli_error("cost", path).strip())
        self.assertEqual(e.file, path)
        self.assertEqual(e.line, n + 1)
        self.assertEqual(e.field, "model.d_model")

    def test_parse_error_names_line(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "garbled.textproto")
            with open(path, "w", encoding="utf-8") as f:
                f.write("name: \"x\"\nmodel {\n  d_model: abc\n}\n")
            with self.assertRaises(moesim.ScenarioError) as ctx:
                moesim.Scenario.from_file(path).validate()
            self.assertEqual(ctx.exception.message.strip(), cli_error("cost", path).strip())
        self.assertEqual(ctx.exception.file, path)
        self.assertEqual(ctx.exception.line, 3)

    def test_unknown_field_is_refused_at_set(self):
        with self.assertRaises(moesim.ScenarioError) as ctx:
            moesim.Scenario().set("model.no_such_field", 3)
        self.assertEqual(ctx.exception.field, "model.no_such_field")
        self.assertIsNone(ctx.exception.line)

    def test_missing_file(self):
        with self.assertRaises(moesim.ScenarioError) as ctx:
            moesim.Scenario.from_file("/nonexistent/x.textproto")
        self.assertEqual(ctx.exception.file, "/nonexistent/x.textproto")

    def test_from_hf_refusal_names_the_key(self):
        bad = os.path.join(tempfile.mkdtemp(), "config.json")
        with open(bad, "w") as f:
            f.write('{\n  "model_type": "mixtral",\n  "hidden_size": "4096"\n}\n')
        with self.assertRaises(moesim.ScenarioError) as ctx:
            moesim.Scenario.from_hf(bad)
        self.assertEqual(ctx.exception.file, bad)
        self.assertIn("hidden_size", str(ctx.exception))
        self.assertEqual(str(ctx.exception).strip(), cli_error("import", "hf", bad).strip())

    def test_bad_network(self):
        with self.assertRaises(ValueError):
            moesim.simulate(moesim.Scenario(), network="telepathy")


def assert_rows_equal_csv(test, rows, csv_text, columns):
    table = list(csv.reader(io.StringIO(csv_text)))
    header, cells = table[0], table[1:]
    test.assertEqual(len(rows), len(cells))
    for row, line in zip(rows, cells):
        test.assertEqual(list(row.keys()), header)
        for key, cell in zip(header, line):
            value = row[key]
            if key in columns or key in ("status", "message"):
                test.assertEqual(value, cell, key)
            elif value is None:
                test.assertEqual(cell, "", key)
            elif isinstance(value, bool):
                test.assertEqual("true" if value else "false", cell, key)
            else:
                test.assertEqual("%.6g" % value, cell, key)


class SweepTest(unittest.TestCase):
    def test_rows_equal_cli_sweep(self):
        vary = {"model.moe.num_experts": [16, 64, 256], "sharding.mesh.expert": [16, 64, 12],
                "sharding.mesh.data": [16, 4]}
        rows = moesim.sweep(moesim.Scenario.from_file(SCENARIO), vary=vary, jobs=2)
        args = ["sweep", SCENARIO, "--csv", "-", "--jobs", "2"]
        for path, values in vary.items():
            args += ["--vary", path + "=" + ",".join(str(v) for v in values)]
        assert_rows_equal_csv(self, rows, cli(*args), list(vary))
        args[args.index("--csv")] = "--json"
        expected = json.loads(cli(*args))
        self.assertEqual(rows, expected)
        self.assertEqual([list(r) for r in rows], [list(r) for r in expected])
        self.assertEqual({r["status"] for r in rows} >= {"ok", "invalid"}, True)

    def test_base_overrides_apply_to_every_point(self):
        sc = moesim.Scenario.from_file(SCENARIO).set("training.recompute", "FULL")
        rows = moesim.sweep(sc, vary={"sharding.mesh.data": [4]}, jobs=1)
        cli_csv = cli("sweep", SCENARIO, "--set", "training.recompute=FULL",
                      "--vary", "sharding.mesh.data=4", "--csv", "-", "--jobs", "1")
        assert_rows_equal_csv(self, rows, cli_csv, ["sharding.mesh.data"])

    def test_plan_ranks_like_cli(self):
        sc = moesim.Scenario.from_file(SCENARIO)
        rows = moesim.plan(sc, top=3, jobs=2)
        out = cli("plan", SCENARIO, "--top", "3", "--jobs", "2")
        table = [l.split() for l in out.splitlines() if l[:1].isdigit()]
        self.assertEqual(len(rows), len(table))
        for row, line in zip(rows, table):
            self.assertEqual(str(row["rank"]), line[0])
            self.assertIn(row["configuration"], " ".join(line))
            self.assertEqual("%.4f" % row["step_time_s"], line[-3])

    def test_tokens_in_budget_ranks_like_cli(self):
        rows = moesim.plan(moesim.Scenario.from_file(DENSE), objective="tokens_in_budget",
                           experts=[16], strategies=["APPLE_3D"], jobs=2)
        out = cli("plan", DENSE, "--objective", "tokens_in_budget", "--experts", "16",
                  "--strategies", "APPLE_3D", "--jobs", "2")
        table = [l.split() for l in out.splitlines() if l[:1].isdigit()]
        self.assertEqual(len(rows), len(table))
        self.assertGreater(len(rows), 0)
        for row, line in zip(rows, table):
            self.assertEqual([str(row["experts"]), str(row["every_k"])], line[:2])
            self.assertIn(row["configuration"], " ".join(line))
            self.assertEqual("%.4f" % row["step_time_s"], line[-7])
        dense = [l for l in out.splitlines() if l.startswith("dense:")][0]
        self.assertIn("steps of %.4f s" % rows[0]["dense_step_time_s"], dense)
        self.assertIn("budget %.2f h" % (rows[0]["budget_s"] / 3600), dense)

    def test_tokens_in_budget_rows_are_the_cli_json(self):
        dense = os.path.join(SOURCE, "scenarios", "apple2024", "dense-85m.textproto")
        rows = moesim.plan(moesim.Scenario.from_file(dense), objective="tokens_in_budget",
                           experts=[8], strategies=["APPLE_3D"], max_pipeline=1, top=2, jobs=2)
        out = cli("plan", dense, "--objective", "tokens_in_budget", "--experts", "8",
                  "--strategies", "APPLE_3D", "--max-pipeline", "1", "--top", "2", "--jobs", "2",
                  "--json", "-")
        self.assertEqual(len(rows), 2)
        self.assertEqual(json.loads(out), rows)  # the same fields, values and order of keys
        self.assertEqual([list(r) for r in json.loads(out)], [list(r) for r in rows])

    def test_to_dataframe_without_pandas(self):
        rows = [{"a": 1}]
        saved = sys.modules.get("pandas")
        sys.modules["pandas"] = None  # import pandas now raises ImportError
        try:
            with self.assertRaises(ImportError) as ctx:
                moesim.to_dataframe(rows)
            self.assertIn("pandas", str(ctx.exception))
        finally:
            if saved is None:
                del sys.modules["pandas"]
            else:
                sys.modules["pandas"] = saved

    def test_to_dataframe_with_pandas(self):
        try:
            import pandas  # noqa: F401
        except ImportError:
            self.skipTest("pandas is not installed: to_dataframe's DataFrame path not checked")
        df = moesim.to_dataframe([{"a": 1, "b": 2.0}, {"a": 3, "b": 4.0}])
        self.assertEqual(list(df["a"]), [1, 3])


if __name__ == "__main__":
    unittest.main()
