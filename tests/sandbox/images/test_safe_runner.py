"""The safe runner (`sandbox.images.shell`) and `python -c` subset (`pysnippet`), by table."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.images import pysnippet, shell
from sandbox.images.shell import Io, run_argv


def run(argv: list[str], env: dict[str, str] | None = None, root: Path | None = None) -> Io:
    slept: list[float] = []
    state = Io(env=dict(env or {}), root=root, sleep=slept.append)
    state.now = lambda: datetime(2026, 7, 24, 10, 5, 3, tzinfo=UTC)
    try:
        state.last_status = run_argv(argv, state)
    except shell.ExitScript as done:  # a top-level `exit`, as run_container reports it
        state.last_status = done.code
    state.shell_vars["slept"] = repr(slept)
    return state


def out(state: Io) -> str:
    value = state.stdout.getvalue()  # type: ignore[attr-defined]
    return str(value)


def err(state: Io) -> str:
    return str(state.stderr.getvalue())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("script", "env", "stdout", "status"),
    [
        pytest.param("echo hi; exit 3", {}, "hi\n", 3, id="echo-then-exit"),
        pytest.param("true && echo yes || echo no", {}, "yes\n", 0, id="and-taken"),
        pytest.param("false && echo yes || echo no", {}, "no\n", 0, id="or-after-failed-and"),
        pytest.param("true || echo a && echo b", {}, "b\n", 0, id="left-associative"),
        pytest.param("false; echo $?", {}, "1\n", 0, id="last-status"),
        pytest.param(
            "echo 'a  b' \"c  $X\" $X", {"X": "1  2"}, "a  b c  1  2 1 2\n", 0, id="quotes"
        ),
        pytest.param("echo ${X}y $Xy", {"X": "1"}, "1y\n", 0, id="braces-and-unset"),
        pytest.param("echo a\\ b \\$X", {"X": "1"}, "a b $X\n", 0, id="backslashes"),
        pytest.param("X=5; echo $X; printenv X", {}, "5\n", 1, id="assignment-not-exported"),
        pytest.param("export X=5; printenv X", {}, "5\n", 0, id="export"),
        pytest.param("# comment\necho one\necho two", {}, "one\ntwo\n", 0, id="newlines"),
        pytest.param("echo -n a; echo b", {}, "ab\n", 0, id="echo-n"),
        pytest.param("nosuch arg", {}, "", 127, id="not-found"),
        pytest.param("echo a | cat", {}, "", 2, id="pipe-refused"),
        pytest.param("echo a > /tmp/x", {}, "", 2, id="redirect-refused"),
        pytest.param("echo $(id)", {}, "", 2, id="substitution-refused"),
        pytest.param("echo 'open", {}, "", 2, id="unterminated"),
        pytest.param("echo a &&", {}, "", 2, id="dangling-and"),
        pytest.param("[ 3 -gt 2 ] && echo big", {}, "big\n", 0, id="bracket"),
        pytest.param('test -z "$X" || echo set', {"X": "v"}, "set\n", 0, id="test-z"),
        pytest.param("[ a = b ]", {}, "", 1, id="bracket-false"),
        pytest.param("[ a = b", {}, "", 2, id="bracket-unclosed"),
        pytest.param("hostname; pwd", {"HOSTNAME": "web-1"}, "web-1\n/\n", 0, id="hostname-pwd"),
        pytest.param("date +%Y-%m-%d", {}, "2026-07-24\n", 0, id="date-format"),
        pytest.param("sh -c 'exit 4'; echo after $?", {}, "after 4\n", 0, id="nested-sh"),
        pytest.param("/bin/echo abs", {}, "abs\n", 0, id="bin-path"),
        pytest.param("exit 300", {}, "", 44, id="exit-wraps"),
        pytest.param("python3 -c 'print(1+1)'", {}, "2\n", 0, id="python-in-sh"),
    ],
)
def test_scripts(script: str, env: dict[str, str], stdout: str, status: int) -> None:
    state = run(["sh", "-c", script], env)
    assert (out(state), state.last_status) == (stdout, status), err(state)


def test_not_found_messages_differ_between_shell_and_argv() -> None:
    assert err(run(["sh", "-c", "curl x"])) == "sh: curl: not found\n"
    state = run(["curl", "x"])
    assert state.last_status == 127
    assert err(state) == 'exec: "curl": executable file not found in $PATH\n'


def test_sleep_uses_the_sleeper_and_rejects_garbage() -> None:
    assert run(["sh", "-c", "sleep 1.5; sleep 2m"]).shell_vars["slept"] == "[1.5, 120.0]"
    bad = run(["sleep", "soon"])
    assert (bad.last_status, err(bad)) == (1, "sleep: invalid number 'soon'\n")


def test_env_prints_exported_variables_only() -> None:
    state = run(["sh", "-c", "A=1; env"], {"B": "2", "C": "3"})
    assert out(state) == "B=2\nC=3\n"


def test_cat_reads_only_the_container_directory(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("web-1\n")
    outside = tmp_path.parent / "secret.txt"
    outside.write_text("nope")
    state = run(["cat", "/etc/hostname", "../secret.txt", "/etc/passwd"], root=tmp_path)
    assert out(state) == "web-1\n"
    assert state.last_status == 1
    assert err(state).splitlines() == [
        "cat: can't open '../secret.txt': No such file or directory",
        "cat: can't open '/etc/passwd': No such file or directory",
    ]
    assert run(["sh", "-c", "[ -f /etc/hostname ]"], root=tmp_path).last_status == 0
    assert run(["sh", "-c", "[ -d /etc/hostname ]"], root=tmp_path).last_status == 1


def test_cat_without_arguments_copies_stdin() -> None:
    state = Io(stdin=io.StringIO("piped\n"))
    assert run_argv(["cat"], state) == 0
    assert state.stdout.getvalue() == "piped\n"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "seconds"),
    [
        pytest.param(["3"], 3.0, id="int"),
        pytest.param(["0.25", "1s"], 1.25, id="sum"),
        pytest.param(["1h"], 3600.0, id="hours"),
        pytest.param(["-1"], None, id="negative"),
        pytest.param([], None, id="missing"),
        pytest.param(["nan"], None, id="nan"),
    ],
)
def test_sleep_seconds(args: list[str], seconds: float | None) -> None:
    assert shell.sleep_seconds(args) == seconds


def snippet(code: str, env: dict[str, str] | None = None) -> tuple[int, str, str, list[float]]:
    stdout: list[str] = []
    stderr: list[str] = []
    slept: list[float] = []
    streams = pysnippet.Streams(stdout.append, stderr.append, slept.append, env or {})
    return pysnippet.run(code, streams), "".join(stdout), "".join(stderr), slept


@pytest.mark.parametrize(
    ("code", "env", "status", "stdout"),
    [
        pytest.param("print('hi')", {}, 0, "hi\n", id="print"),
        pytest.param("print('a', 'b', sep='-', end='!')", {}, 0, "a-b!", id="sep-end"),
        pytest.param("import sys; sys.exit(3)", {}, 3, "", id="exit-code"),
        pytest.param("import sys; sys.exit()", {}, 0, "", id="exit-none"),
        pytest.param("import sys; sys.exit('bye')", {}, 1, "", id="exit-message"),
        pytest.param("import os; print(os.environ['X'])", {"X": "v"}, 0, "v\n", id="environ"),
        pytest.param("import os; print(os.getenv('Y', 'd'))", {}, 0, "d\n", id="getenv"),
        pytest.param("n = 2\nprint(f'{n * 3}x')", {}, 0, "6x\n", id="fstring"),
        pytest.param("import os; os.environ['MISSING']", {}, 1, "", id="keyerror"),
        pytest.param("import subprocess", {}, 1, "", id="import-refused"),
        pytest.param("open('/etc/passwd')", {}, 1, "", id="open-refused"),
        pytest.param("print(__import__('os'))", {}, 1, "", id="dunder-import-refused"),
        pytest.param("print(1).__class__", {}, 1, "", id="attribute-refused"),
        pytest.param("for i in range(2): print(i)", {}, 1, "", id="for-refused"),
        pytest.param("print(", {}, 1, "", id="syntax-error"),
    ],
)
def test_python_snippets(code: str, env: dict[str, str], status: int, stdout: str) -> None:
    result = snippet(code, env)
    assert result[:2] == (status, stdout), result[2]


def test_refused_python_prints_nothing_and_says_why() -> None:
    status, stdout, stderr, _ = snippet("print('first'); import socket")
    assert (status, stdout) == (1, "")
    assert "does not run `import socket`" in stderr


def test_python_sleep_goes_to_the_sleeper() -> None:
    assert snippet("import time; time.sleep(0.5); print('up')")[1:] == ("up\n", "", [0.5])
