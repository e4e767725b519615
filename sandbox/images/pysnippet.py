"""`python -c CODE` for the python stand-in image, evaluated without running Python code.

The sandbox runs as root and cannot isolate a real interpreter, so `python:*` pods
do not get one. What test pods pass to `python -c` is almost always printing,
reading the environment, sleeping and exiting; this module parses CODE with `ast`
and evaluates exactly that subset: `import sys|os|time`, assignments to names,
`print(...)` (with `sep`, `end`, `file=sys.stderr`, `flush`), `sys.stdout.write`,
`sys.stderr.write`, `sys.exit(x)`, `time.sleep(x)`, `os.environ[...]`,
`os.environ.get(...)`, `os.getenv(...)`, constants, f-strings, `+ - * / // %`,
and `while True:` / `while 1:` loops of those statements (the keep-alive idiom).
Anything else exits 1 before printing anything, with a message saying the sandbox
does not run it; an error at run time (a missing variable) prints the exception
line Python would and exits 1.

    >>> out = []
    >>> run("import sys; print('hi', 2 + 1); sys.exit(4)",
    ...     Streams(out.append, out.append, lambda s: None, {}))
    4
    >>> out
    ['hi 3\\n']
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MODULES = frozenset({"sys", "os", "time"})
UNSUPPORTED = 1
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


_CONVERSIONS: dict[str, Callable[..., Any]] = {"str": str, "int": int, "len": len}


@dataclass(frozen=True)
class Streams:
    out: Callable[[str], None]
    err: Callable[[str], None]
    sleep: Callable[[float], None]
    env: Mapping[str, str]


class Unsupported(ValueError):
    """CODE uses something outside the subset."""


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def check(code: str) -> ast.Module:
    """Parse and vet CODE; raises SyntaxError or Unsupported.

    >>> check("import subprocess")
    Traceback (most recent call last):
    ...
    sandbox.images.pysnippet.Unsupported: import subprocess
    """
    tree = ast.parse(code, "<string>")
    for statement in tree.body:
        _check_statement(statement)
    return tree


def _check_statement(node: ast.stmt) -> None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name not in MODULES or alias.asname:
                raise Unsupported(f"import {alias.name}")
        return
    if isinstance(node, ast.Pass):
        return
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        _check_call(node.value)
        return
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        _check_expression(node.value)
        return
    if isinstance(node, ast.While) and not node.orelse:
        if not (isinstance(node.test, ast.Constant) and node.test.value in (True, 1)):
            raise Unsupported("while loops other than `while True:`")
        for inner in node.body:
            _check_statement(inner)
        return
    raise Unsupported(ast.unparse(node).splitlines()[0])


_CALLS = frozenset({"print", "sys.exit", "time.sleep", "sys.stdout.write", "sys.stderr.write"})
_CALLS_NOOP = frozenset({"sys.stdout.flush", "sys.stderr.flush"})
_EXPRESSION_CALLS = frozenset({"os.environ.get", "os.getenv", "str", "int", "len"})


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _check_call(node: ast.Call, allowed: frozenset[str] = _CALLS | _CALLS_NOOP) -> None:
    name = _dotted(node.func)
    if name not in allowed:
        raise Unsupported(f"{name or ast.unparse(node.func)}()")
    for arg in node.args:
        _check_expression(arg)
    for keyword in node.keywords:
        if name != "print" or keyword.arg not in ("sep", "end", "file", "flush"):
            raise Unsupported(f"{name}({keyword.arg}=...)")
        if keyword.arg != "file":
            _check_expression(keyword.value)
        elif _dotted(keyword.value) not in ("sys.stdout", "sys.stderr"):
            raise Unsupported("print(file=...) other than sys.stdout/sys.stderr")


def _check_expression(node: ast.expr) -> None:
    if isinstance(node, (ast.Constant, ast.Name)):
        return
    if isinstance(node, ast.JoinedStr):
        for value in node.values:
            _check_expression(value)
        return
    if isinstance(node, ast.FormattedValue):
        _check_expression(node.value)
        if node.format_spec is not None:
            _check_expression(node.format_spec)
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check_expression(node.left)
        _check_expression(node.right)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check_expression(node.operand)
        return
    if isinstance(node, ast.Subscript) and _dotted(node.value) == "os.environ":
        _check_expression(node.slice)
        return
    if isinstance(node, ast.Call):
        _check_call(node, _EXPRESSION_CALLS)
        return
    raise Unsupported(ast.unparse(node))


def run(code: str, streams: Streams) -> int:
    """Vet, then evaluate; the exit status Python would give."""
    try:
        tree = check(code)
    except SyntaxError as error:
        streams.err(f'  File "<string>", line {error.lineno}\nSyntaxError: {error.msg}\n')
        return UNSUPPORTED
    except Unsupported as error:
        streams.err(
            f"python: the sandbox's python stand-in does not run `{error}` "
            "(print, sys.exit, time.sleep, os.environ reads and assignments only)\n"
        )
        return UNSUPPORTED
    names: dict[str, Any] = {}
    try:
        _run_block(tree.body, names, streams)
    except _Exit as done:
        return done.code
    except (KeyError, NameError, TypeError, ValueError, ZeroDivisionError) as error:
        streams.err(f"Traceback (most recent call last):\n{type(error).__name__}: {error}\n")
        return 1
    return 0


def _run_block(body: list[ast.stmt], names: dict[str, Any], streams: Streams) -> None:
    for statement in body:
        if isinstance(statement, ast.Assign):
            value = _eval(statement.value, names, streams)
            for target in statement.targets:
                assert isinstance(target, ast.Name)
                names[target.id] = value
        elif isinstance(statement, ast.Expr):
            assert isinstance(statement.value, ast.Call)
            _call(statement.value, names, streams)
        elif isinstance(statement, ast.While):
            while True:
                _run_block(statement.body, names, streams)


def _call(node: ast.Call, names: dict[str, Any], streams: Streams) -> Any:
    name = _dotted(node.func)
    args = [_eval(arg, names, streams) for arg in node.args]
    if name == "print":
        options = {k.arg: k for k in node.keywords}
        sep = _eval(options["sep"].value, names, streams) if "sep" in options else " "
        end = _eval(options["end"].value, names, streams) if "end" in options else "\n"
        to_err = "file" in options and _dotted(options["file"].value) == "sys.stderr"
        (streams.err if to_err else streams.out)(sep.join(str(a) for a in args) + end)
        return None
    if name == "sys.exit":
        value = args[0] if args else None
        if value is None or isinstance(value, int):
            raise _Exit(int(value or 0) & 0xFF)
        streams.err(f"{value}\n")
        raise _Exit(1)
    if name == "time.sleep":
        streams.sleep(float(args[0]))
        return None
    if name in ("sys.stdout.write", "sys.stderr.write"):
        (streams.out if name == "sys.stdout.write" else streams.err)(str(args[0]))
        return len(str(args[0]))
    if name in ("os.environ.get", "os.getenv"):
        return streams.env.get(str(args[0]), args[1] if len(args) > 1 else None)
    if name in ("str", "int", "len"):
        return _CONVERSIONS[name](*args)
    return None  # the flush calls


def _eval(node: ast.expr, names: dict[str, Any], streams: Streams) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise NameError(f"name '{node.id}' is not defined")
        return names[node.id]
    if isinstance(node, ast.JoinedStr):
        return "".join(str(_eval(value, names, streams)) for value in node.values)
    if isinstance(node, ast.FormattedValue):
        value = _eval(node.value, names, streams)
        spec = "" if node.format_spec is None else _eval(node.format_spec, names, streams)
        return format(value, spec)
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, names, streams), _eval(node.right, names, streams)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        return -_eval(node.operand, names, streams)
    if isinstance(node, ast.Subscript):
        return streams.env[str(_eval(node.slice, names, streams))]
    if isinstance(node, ast.Call):
        return _call(node, names, streams)
    raise Unsupported(ast.unparse(node))
