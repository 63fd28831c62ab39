"""moesim.ScenarioError: bad input, with the file, line and field the message names.

The C++ libraries report bad input as one message per error, one per line, e.g.

    scenarios/x.textproto:27: sharding.mesh.expert=12 does not divide model.moe.num_experts=64
    <default> (--set model.d_model=-4): model.d_model=-4 must be > 0
    --set model.nope=3: model has no field "nope" (fields: ...)
    /tmp/missing.textproto: cannot open scenario file
    scenarios/x.textproto:3:7: Expected integer, got: abc   (a parse error: file:line:column)

This module is the one place those messages are taken apart.
"""
import re

__all__ = ["ScenarioError", "parse_error_line"]

_FILE_LINE = re.compile(r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::\d+)?: (?P<rest>.*)$")
_FILE_SET = re.compile(r"^(?P<file>\S.*?) \(--set (?P<set>[^)]*)\): (?P<rest>.*)$")
_SET_ONLY = re.compile(r"^--set (?P<set>[^:]*): (?P<rest>.*)$")
_FILE_ONLY = re.compile(r"^(?P<file>[^\s:]+): (?P<rest>.*)$")
_FIELD = re.compile(r"^(?P<field>[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+)")


def parse_error_line(line):
    """(file, line, field, message) of one error line; None where the line does not say."""
    file = lineno = field = None
    rest = line
    for pattern in (_FILE_LINE, _FILE_SET, _SET_ONLY, _FILE_ONLY):
        m = pattern.match(line)
        if not m:
            continue
        groups = m.groupdict()
        file = groups.get("file")
        if groups.get("line"):
            lineno = int(groups["line"])
        rest = groups["rest"]
        if groups.get("set"):
            field = groups["set"].split("=", 1)[0]
        break
    if field is None:
        f = _FIELD.match(rest)
        if f:
            field = f.group("field")
    return file, lineno, field, rest


class ScenarioError(ValueError):
    """Bad input: a scenario, an override or a value the model refuses.

    Attributes: file (the scenario file, "<default>" for the built-in scenario, or None),
    line (1-based, or None), field (the field path, e.g. "model.d_model", or None), message
    (the full text, every error on its own line) and errors (one (file, line, field, message)
    tuple per line).
    """

    def __init__(self, message):
        super().__init__(message)
        self.message = message
        lines = [l for l in message.splitlines() if l.strip()] or [message]
        self.errors = [parse_error_line(l) for l in lines]
        self.file, self.line, self.field, _ = self.errors[0]
