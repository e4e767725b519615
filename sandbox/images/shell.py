"""The safe runner: a small `sh` for the busybox and python stand-ins, never the host's.

Pods run as local processes and the sandbox runs as root, so a pod's `command`
must not reach the host's shell. This interpreter understands what test pods
write: plain argv or `sh -c '...'` scripts with `;`, `&&`, `||`, newlines,
`#` comments, single/double quotes, backslashes, `$VAR` / `${VAR}` / `$?`,
`NAME=value` and `export`, and the commands `sleep echo cat env printenv exit
true false hostname date pwd test [ sh python`. Anything else fails as a shell
does, `sh: NAME: not found` and exit 127; pipes, redirections, `&`, `$(...)`
and control flow fail as a syntax error (exit 2) rather than half-running.

Files: `cat` and `test -e/-f/-d` see only the container's own directory (the
`root` given by the kubelet, where `/etc/hostname` lives), never the host's.

Parsing and evaluation are pure (`tokenize`, `parse`, `run` with an `Io` the
tests fill); `main` is the thin process entry the stand-in images call.

    >>> io = Io(env={"NAME": "pod"})
    >>> run_argv(["sh", "-c", "echo hi $NAME; false || exit 3"], io)
    3
    >>> io.stdout.getvalue()
    'hi pod\\n'
"""

from __future__ import annotations

import io as _io
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sandbox.images import pysnippet

NOT_FOUND = 127
SYNTAX_ERROR = 2
SHELLS = frozenset({"sh", "ash", "bash"})
BIN_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/")
_UNSUPPORTED = {"|": "a pipe", ">": "a redirection", "<": "a redirection", "&": "'&'"}
_UNSUPPORTED.update({"(": "a subshell", ")": "a subshell", "`": "command substitution"})


class ShellSyntaxError(ValueError):
    """A script this interpreter does not run; reported as `sh: syntax error: ...`, exit 2."""


class ExitScript(Exception):
    """`exit N` ends the whole script."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# ---- tokens ----


@dataclass(frozen=True)
class Literal:
    text: str
    quoted: bool


@dataclass(frozen=True)
class Variable:
    name: str
    quoted: bool


Part = Literal | Variable


@dataclass(frozen=True)
class Word:
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Operator:
    text: str  # ";", "&&" or "||"


Token = Word | Operator


def tokenize(script: str) -> list[Token]:
    """Words and the operators between them; a newline is `;`.

    >>> [t.text if isinstance(t, Operator) else len(t.parts) for t in tokenize("a 'b c'&&d")]
    [1, 1, '&&', 1]
    """
    tokens: list[Token] = []
    parts: list[Part] = []
    started = False
    i, n = 0, len(script)

    def flush() -> None:
        nonlocal parts, started
        if started:
            tokens.append(Word(tuple(parts)))
        parts, started = [], False

    while i < n:
        char = script[i]
        if char in " \t":
            flush()
            i += 1
        elif char in ";\n":
            flush()
            tokens.append(Operator(";"))
            i += 1
        elif script.startswith("&&", i) or script.startswith("||", i):
            flush()
            tokens.append(Operator(script[i : i + 2]))
            i += 2
        elif char == "#" and not started:
            while i < n and script[i] != "\n":
                i += 1
        elif char in _UNSUPPORTED:
            raise ShellSyntaxError(f"{_UNSUPPORTED[char]} is not supported")
        else:
            i = _word_part(script, i, parts)
            started = True
    flush()
    return tokens


def _word_part(script: str, i: int, parts: list[Part]) -> int:
    """One piece of a word at `i` (quoted text, an escape, `$...`, plain text); the next index."""
    char = script[i]
    if char == "'":
        end = script.find("'", i + 1)
        if end < 0:
            raise ShellSyntaxError("unterminated quoted string")
        parts.append(Literal(script[i + 1 : end], True))
        return end + 1
    if char == '"':
        return _double_quoted(script, i + 1, parts)
    if char == "\\":
        if i + 1 < len(script) and script[i + 1] != "\n":
            parts.append(Literal(script[i + 1], True))
        return i + 2
    if char == "$":
        return _dollar(script, i, parts, quoted=False)
    start = i
    while i < len(script) and script[i] not in " \t;\n&|'\"\\$<>()`":
        i += 1
    parts.append(Literal(script[start:i], False))
    return i


def _double_quoted(script: str, i: int, parts: list[Part]) -> int:
    text: list[str] = []
    while i < len(script):
        char = script[i]
        if char == '"':
            parts.append(Literal("".join(text), True))
            return i + 1
        if char == "\\" and i + 1 < len(script) and script[i + 1] in '$`"\\\n':
            text.append(script[i + 1])
            i += 2
        elif char == "$":
            parts.append(Literal("".join(text), True))
            text = []
            i = _dollar(script, i, parts, quoted=True)
        elif char == "`":
            raise ShellSyntaxError("command substitution is not supported")
        else:
            text.append(char)
            i += 1
    raise ShellSyntaxError("unterminated quoted string")


def _dollar(script: str, i: int, parts: list[Part], quoted: bool) -> int:
    """`$NAME`, `${NAME}`, `$?`; a lone `$` is literal; `$(` is refused."""
    nxt = script[i + 1 : i + 2]
    if nxt == "(":
        raise ShellSyntaxError("command substitution is not supported")
    if nxt == "{":
        end = script.find("}", i + 2)
        name = script[i + 2 : end] if end >= 0 else ""
        if not _is_name(name):
            raise ShellSyntaxError(f"bad substitution: {script[i : end + 1 or None]}")
        parts.append(Variable(name, quoted))
        return end + 1
    if nxt == "?":
        parts.append(Variable("?", quoted))
        return i + 2
    end = i + 1
    while end < len(script) and (script[end].isalnum() or script[end] == "_"):
        end += 1
    if end == i + 1 or script[i + 1].isdigit():
        parts.append(Literal("$", quoted))
        return i + 1
    parts.append(Variable(script[i + 1 : end], quoted))
    return end


def _is_name(text: str) -> bool:
    return bool(text) and not text[0].isdigit() and all(c.isalnum() or c == "_" for c in text)


# ---- parse ----


@dataclass(frozen=True)
class Step:
    """One simple command and how it joins the previous one (`;`, `&&`, `||`)."""

    connector: str
    words: tuple[Word, ...]


def parse(tokens: list[Token]) -> list[Step]:
    """Left-associative `&&`/`||` lists, as POSIX evaluates them.

    >>> [(s.connector, len(s.words)) for s in parse(tokenize("a b; c || d"))]
    [(';', 2), (';', 1), ('||', 1)]
    """
    steps: list[Step] = []
    connector, words = ";", []
    for token in tokens:
        if isinstance(token, Word):
            words.append(token)
            continue
        if not words:
            if token.text == ";" and connector == ";":
                continue
            raise ShellSyntaxError(f"unexpected '{token.text}'")
        steps.append(Step(connector, tuple(words)))
        connector, words = token.text, []
    if words:
        steps.append(Step(connector, tuple(words)))
    elif connector != ";":
        raise ShellSyntaxError("unexpected end of file")
    return steps


def expand(word: Word, variables: Mapping[str, str]) -> list[str]:
    """Fields of one word: unquoted expansions split on whitespace, quoted ones do not.

    >>> expand(tokenize('"$A" $A')[0], {"A": "x y"}), expand(tokenize('$A')[0], {"A": "x y"})
    (['x y'], ['x', 'y'])
    """
    fields: list[str] = []
    current: str | None = None
    for part in word.parts:
        if isinstance(part, Literal):
            current = (current or "") + part.text
            continue
        value = variables.get(part.name, "")
        if part.quoted:
            current = (current or "") + value
            continue
        pieces = value.split()
        if not pieces:
            continue
        if value[:1].isspace() and current is not None:
            fields.append(current)
            current = None
        current = (current or "") + pieces[0]
        for piece in pieces[1:]:
            fields.append(current)
            current = piece
        if value[-1:].isspace():
            fields.append(current)
            current = None
    if current is not None:
        fields.append(current)
    return fields


# ---- evaluation ----


@dataclass
class Io:
    """What a command may touch: streams, the environment, its own directory, a sleeper."""

    env: dict[str, str] = field(default_factory=dict)
    stdout: TextIO = field(default_factory=_io.StringIO)
    stderr: TextIO = field(default_factory=_io.StringIO)
    stdin: TextIO = field(default_factory=_io.StringIO)
    root: Path | None = None
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    shell_vars: dict[str, str] = field(default_factory=dict)
    last_status: int = 0

    def variables(self) -> dict[str, str]:
        return {**self.env, **self.shell_vars, "?": str(self.last_status)}

    def out(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(text)
        self.stderr.flush()


def run_script(script: str, io: Io, name: str = "sh") -> int:
    """Run one script; a syntax error runs nothing and answers 2."""
    try:
        steps = parse(tokenize(script))
    except ShellSyntaxError as error:
        io.err(f"{name}: syntax error: {error}\n")
        return SYNTAX_ERROR
    status = 0
    try:
        for step in steps:
            if (step.connector == "&&" and status != 0) or (step.connector == "||" and status == 0):
                continue
            status = _run_step(step, io)
            io.last_status = status
    except ExitScript as done:
        return done.code
    return status


def _run_step(step: Step, io: Io) -> int:
    variables = io.variables()
    words = [field for word in step.words for field in expand(word, variables)]
    assignments = 0
    for text in words:
        name, equals, value = text.partition("=")
        if not (equals and _is_name(name)):
            break
        io.shell_vars[name] = value
        assignments += 1
    argv = words[assignments:]
    return run_argv(argv, io, in_shell=True) if argv else 0


def run_argv(argv: list[str], io: Io, in_shell: bool = False) -> int:
    """One command; `in_shell` picks the shell's not-found message over the runtime's."""
    if not argv:
        return 0
    name = _command_name(argv[0])
    command = BUILTINS.get(name)
    if command is None:
        if in_shell:
            io.err(f"sh: {argv[0]}: not found\n")
        else:
            io.err(f'exec: "{argv[0]}": executable file not found in $PATH\n')
        return NOT_FOUND
    return command(argv[1:], io)


def _command_name(text: str) -> str:
    for directory in BIN_DIRS:
        if text.startswith(directory):
            return text[len(directory) :]
    return text


# ---- commands ----


def _sh(args: list[str], io: Io) -> int:
    if not args:
        return run_script(io.stdin.read(), io)
    if args[0] == "-c":
        if len(args) < 2:
            io.err("sh: -c requires an argument\n")
            return SYNTAX_ERROR
        return run_script(args[1], io)
    if args[0].startswith("-"):
        io.err(f"sh: {args[0]}: the sandbox's sh supports only -c\n")
        return SYNTAX_ERROR
    path = _resolve(args[0], io)
    if path is None or not path.is_file():
        io.err(f"sh: can't open '{args[0]}': No such file or directory\n")
        return NOT_FOUND
    return run_script(path.read_text(errors="replace"), io)


def _echo(args: list[str], io: Io) -> int:
    newline, escapes = True, False
    while args and args[0] in ("-n", "-e", "-ne", "-en", "-E"):
        flag, args = args[0], args[1:]
        newline = newline and "n" not in flag
        escapes = "e" in flag and flag != "-E"
    text = " ".join(args)
    if escapes:
        text = text.encode().decode("unicode_escape", errors="replace")
    io.out(text + ("\n" if newline else ""))
    return 0


_SLEEP_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def sleep_seconds(args: list[str]) -> float | None:
    """The total of `sleep`'s operands (`1.5`, `2m`, `infinity`); None when one is invalid.

    >>> sleep_seconds(["1m", "0.5"]), sleep_seconds(["x"]), sleep_seconds(["infinity"])
    (60.5, None, inf)
    """
    if not args:
        return None
    total = 0.0
    for arg in args:
        if arg in ("inf", "infinity"):
            return float("inf")
        scale = _SLEEP_UNITS.get(arg[-1:], 0.0)
        number = arg[:-1] if scale else arg
        try:
            value = float(number)
        except ValueError:
            return None
        if value < 0 or math.isnan(value):
            return None
        total += value * (scale or 1.0)
    return total


def _sleep(args: list[str], io: Io) -> int:
    seconds = sleep_seconds(args)
    if seconds is None:
        io.err(f"sleep: invalid number '{' '.join(args)}'\n")
        return 1
    while seconds > 0:  # `infinity` sleeps in day-long pieces until a signal ends it
        chunk = min(seconds, 86400.0)
        io.sleep(chunk)
        seconds -= chunk
    return 0


def _cat(args: list[str], io: Io) -> int:
    status = 0
    for arg in args or ["-"]:
        if arg == "-":
            io.out(io.stdin.read())
            continue
        path = _resolve(arg, io)
        if path is None or not path.is_file():
            io.err(f"cat: can't open '{arg}': No such file or directory\n")
            status = 1
            continue
        io.out(path.read_text(errors="replace"))
    return status


def _resolve(text: str, io: Io) -> Path | None:
    """A path inside the container's own directory, or None (nothing outside it exists)."""
    if io.root is None:
        return None
    root = io.root.resolve()
    candidate = (root / text.lstrip("/")).resolve()
    return candidate if candidate == root or root in candidate.parents else None


def _env(args: list[str], io: Io) -> int:
    if args:
        io.err("env: the sandbox's env only prints the environment\n")
        return 1
    io.out("".join(f"{key}={value}\n" for key, value in io.env.items()))
    return 0


def _printenv(args: list[str], io: Io) -> int:
    if not args:
        return _env(args, io)
    missing = [name for name in args if name not in io.env]
    io.out("".join(f"{io.env[name]}\n" for name in args if name in io.env))
    return 1 if missing else 0


def _exit(args: list[str], io: Io) -> int:
    try:
        code = int(args[0]) if args else io.last_status
    except ValueError:
        io.err(f"sh: exit: Illegal number: {args[0]}\n")
        code = SYNTAX_ERROR
    raise ExitScript(code & 0xFF)


def _export(args: list[str], io: Io) -> int:
    for arg in args:
        name, equals, value = arg.partition("=")
        if not _is_name(name):
            io.err(f"sh: export: bad variable name '{name}'\n")
            return 1
        io.env[name] = value if equals else io.shell_vars.get(name, io.env.get(name, ""))
    return 0


def _hostname(args: list[str], io: Io) -> int:
    io.out(io.env.get("HOSTNAME", "localhost") + "\n")
    return 0


def _date(args: list[str], io: Io) -> int:
    now = io.now()
    utc = [a for a in args if a not in ("-u", "--utc")]
    if utc and utc[0].startswith("+"):
        io.out(now.strftime(utc[0][1:]) + "\n")
    else:
        io.out(now.strftime("%a %b %e %H:%M:%S UTC %Y") + "\n")
    return 0


def _pwd(args: list[str], io: Io) -> int:
    io.out("/\n")
    return 0


def _python(args: list[str], io: Io) -> int:
    if not args:
        code = io.stdin.read()
    elif args[0] == "-c" and len(args) >= 2:
        code = args[1]
    elif args[0] in ("-V", "--version"):
        io.out("Python 3.13.5\n")
        return 0
    else:
        io.err("python: the sandbox's python stand-in runs only `python -c CODE`\n")
        return SYNTAX_ERROR
    return pysnippet.run(code, pysnippet.Streams(io.out, io.err, io.sleep, io.env))


def evaluate_test(args: list[str], exists: Callable[[str, str], bool]) -> int:
    """`test`'s answer (0 true, 1 false, 2 error); `exists(flag, path)` answers -e/-f/-d.

    >>> evaluate_test(["1", "-lt", "2"], lambda f, p: False), evaluate_test(["-z", "x"], None)
    (0, 1)
    """
    if args[:1] == ["!"]:
        inner = evaluate_test(args[1:], exists)
        return inner if inner == SYNTAX_ERROR else 1 - inner
    if not args:
        return 1
    if len(args) == 1:
        return 0 if args[0] else 1
    if len(args) == 2:
        flag, value = args
        if flag == "-z":
            return 0 if not value else 1
        if flag == "-n":
            return 0 if value else 1
        if flag in ("-e", "-f", "-d"):
            return 0 if exists(flag, value) else 1
        return SYNTAX_ERROR
    if len(args) == 3:
        left, op, right = args
        if op in ("=", "=="):
            return 0 if left == right else 1
        if op == "!=":
            return 0 if left != right else 1
        compare = _INT_TESTS.get(op)
        if compare is None:
            return SYNTAX_ERROR
        try:
            return 0 if compare(int(left), int(right)) else 1
        except ValueError:
            return SYNTAX_ERROR
    return SYNTAX_ERROR


_INT_TESTS: dict[str, Callable[[int, int], bool]] = {
    "-eq": lambda a, b: a == b,
    "-ne": lambda a, b: a != b,
    "-lt": lambda a, b: a < b,
    "-le": lambda a, b: a <= b,
    "-gt": lambda a, b: a > b,
    "-ge": lambda a, b: a >= b,
}


def _test(args: list[str], io: Io) -> int:
    def exists(flag: str, text: str) -> bool:
        path = _resolve(text, io)
        if path is None or not path.exists():
            return False
        return flag == "-e" or (path.is_file() if flag == "-f" else path.is_dir())

    answer = evaluate_test(args, exists)
    if answer == SYNTAX_ERROR:
        io.err("sh: test: syntax error\n")
    return answer


def _bracket(args: list[str], io: Io) -> int:
    if args[-1:] != ["]"]:
        io.err("sh: [: missing ]\n")
        return SYNTAX_ERROR
    return _test(args[:-1], io)


BUILTINS: dict[str, Callable[[list[str], Io], int]] = {
    **dict.fromkeys(SHELLS, _sh),
    "sleep": _sleep,
    "echo": _echo,
    "cat": _cat,
    "env": _env,
    "printenv": _printenv,
    "exit": _exit,
    "export": _export,
    "true": lambda args, io: 0,
    "false": lambda args, io: 1,
    ":": lambda args, io: 0,
    "hostname": _hostname,
    "date": _date,
    "pwd": _pwd,
    "test": _test,
    "[": _bracket,
    "python": _python,
    "python3": _python,
}


def run_container(argv: list[str], root: Path | None) -> int:
    """The process entry: the container's argv against this process's env and streams."""
    io = Io(env=dict(os.environ), stdout=sys.stdout, stderr=sys.stderr, stdin=sys.stdin)
    io.root = root
    try:
        return run_argv(argv, io)
    except ExitScript as done:
        return done.code
