"""moesim: training step time, cost and sharding search for dense and Mixture-of-Experts models.

The same simulator and cost model as the `moesim` command, from Python (docs/python.md):

    import moesim
    sc = moesim.Scenario.from_file("scenarios/apple2024/moe-1.6b-64e.textproto")
    r = moesim.simulate(sc.set("model.moe.num_experts", 32).set("sharding.mesh.expert", 32)
                          .set("sharding.mesh.data", 8))
    print(r.step_time_s, r.mfu)

Results equal the command's: simulate(...).to_dict() is `moesim simulate --json`, cost(...) is
`moesim cost --json`, topology(...) is `moesim topo --json`, and sweep(...) rows are
`moesim sweep --json` rows (docs/schema.md documents every field and its unit).
"""
import os

from moesim._errors import ScenarioError
from moesim import _core

__all__ = ["Scenario", "Result", "ScenarioError", "simulate", "cost", "sweep", "plan",
           "topology", "to_dataframe", "import_hf", "SCHEMA_VERSION"]

Scenario = _core.Scenario
Result = _core.Result
SCHEMA_VERSION = _core.SCHEMA_VERSION


def import_hf(config_path, seq_len=0):
    """What `moesim import hf CONFIG.json` reads from a Hugging Face config.json (docs/import.md):
    a dict with family, scenario_text, mapped (key, field, value), not_mapped and ignored (key,
    reason) and notes. seq_len: the training sequence (0: min(max_position_embeddings, 4096)).
    Raises ScenarioError naming the file, the key and its line on a config it cannot read."""
    return _core.import_hf(str(config_path), int(seq_len))


def _from_hf(config_path, seq_len=0):
    """Scenario.from_hf(config_path, seq_len=0): the scenario `moesim import hf` writes for a
    Hugging Face config.json (one 8-GPU H100 node, Megatron-LM defaults; docs/import.md), to be
    changed with .set(). import_hf() lists what was mapped and what was not."""
    imported = import_hf(config_path, seq_len)
    base_dir = os.path.dirname(os.path.abspath(str(config_path)))
    return Scenario.from_text(imported["scenario_text"], str(config_path), base_dir)


Scenario.from_hf = staticmethod(_from_hf)


def simulate(scenario, network="analytical", keep_ops=False, max_memory_bytes=0.0):
    """One training step of `scenario` (a Scenario). network: "analytical" or "flow".

    Returns a Result: step_time_s, mfu, tokens_per_s, tflops_per_device, breakdown_s, fits,
    to_dict() (= `moesim simulate --json`), ops (the timeline, one dict per op) and
    write_trace(path) (a Chrome trace). keep_ops=True builds the op-by-op program now rather
    than when .ops is first read. The GIL is released while it runs.
    """
    return _core.simulate(scenario, network, keep_ops, max_memory_bytes)


def cost(scenario):
    """Parameters, FLOPs, memory and compute time of `scenario`: `moesim cost --json` as a dict."""
    return _core.cost(scenario)


def sweep(scenario, vary, jobs=None, network="analytical", max_memory_bytes=0.0):
    """The grid of every value of every path in `vary` ({"model.moe.num_experts": [16, 64]}),
    first path outermost, simulated on `jobs` threads (default: all cores), GIL released.

    Returns one dict per point, as `moesim sweep --json` rows: the varied paths (their values as
    text), status, step_time_s, ..., fits, message; figures are None for invalid points.
    """
    args = {} if jobs is None else {"jobs": int(jobs)}
    return _core.sweep(scenario, dict(vary), network=network, max_memory_bytes=max_memory_bytes,
                       **args)


def plan(scenario, objective="step_time", top=10, jobs=None, max_pipeline=8, strategies=None,
         experts=None, space="auto", max_memory_bytes=0.0):
    """`moesim plan`. objective "step_time": the `top` fastest feasible shardings of the
    scenario's model on its cluster, as sweep rows with rank, configuration and overrides (the
    --set overrides that select it); space: "auto", "legacy" or "megatron".
    objective "tokens_in_budget" (a dense scenario): the MoE candidates (expert counts
    `experts`) that train on the most tokens in the dense model's Chinchilla wall-clock budget,
    one row per candidate, most tokens first."""
    args = {} if jobs is None else {"jobs": int(jobs)}
    return _core.plan(scenario, objective=objective, top=top, max_pipeline=max_pipeline,
                      strategies=list(strategies or []), experts=list(experts or []),
                      space=space, max_memory_bytes=max_memory_bytes, **args)


def topology(name, placement=""):
    """`moesim topo NAME [--placement AXES=SIZES] --json` as a dict."""
    return _core.topology(name, placement)


def to_dataframe(rows):
    """A pandas DataFrame of sweep or plan rows (or Result.ops). Needs pandas."""
    try:
        import pandas
    except ImportError as e:
        raise ImportError(
            "moesim.to_dataframe needs pandas, which is not installed (pip install pandas, or "
            "apt-get install python3-pandas); the rows themselves are plain dicts") from e
    return pandas.DataFrame(list(rows))
