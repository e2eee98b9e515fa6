"""The code verifier on honest input: extraction, test formats, reasons, hidden tests, limits, CLI."""

from __future__ import annotations

import ast
import json
import os
import textwrap
import time
from pathlib import Path

import pytest
from conftest import needs_sandbox
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.records import Sample
from rlvr.verify import code as code_module
from rlvr.verify import get_verifier, sandbox, verify_samples
from rlvr.verify.code import TestSpecError, extract_code, parse_suite, verify_batch


def solution(code: str) -> str:
    return f"Let me think.\n\n```python\n{textwrap.dedent(code).strip()}\n```\n"


ADD = solution("def add(a, b):\n    return a + b")
SUB = solution("def add(a, b):\n    return a - b")
DOUBLE = solution("n = int(input())\nprint(n * 2)")
HUMANEVAL_TESTS = """
METADATA = {"author": "x"}


def check(candidate):
    assert candidate(1, 2) == 3
    for a, b in [(0, 0), (-1, 1), (10, 5)]:
        assert candidate(a, b) == a + b
    assert abs(candidate(0.1, 0.2) - 0.3) < 1e-9
"""


# ----------------------------------------------------------------------------------------------------
# pure functions (no sandbox)


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("```python\nx = 1\n```", "x = 1\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```\nx = 1\n```", "x = 1\n"),
        ("```python\nfirst\n```\ntext\n```python\nsecond\n```", "second\n"),
        ("```python\nx = 1\n```\nthen some shell:\n```bash\nls\n```", "x = 1\n"),
        ("```bash\nls\n```\nprose\n```python\nx = 1\n```\n", "x = 1\n"),
        ("```Python3\r\nx = 1\r\n```", "x = 1\r\n"),
        ("  ```python\n  x = 1\n  ```\n", "  x = 1\n"),
        ("```python\ns = '```'\n```", "s = '```'\n"),  # a fence only on a line of its own
        ("no code here", None),
        ("```python\nunclosed = 1\n", None),
        ("", None),
    ],
)
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


def test_parse_suite_formats():
    asserts = parse_suite("visible", "import math\nassert f(1) == 2\nassert g()")
    assert asserts.kind == "assert" and asserts.size == 3
    assert "__rlvr_assert_equal(f(1), 2, 2)" in asserts.steps[1]
    assert "__rlvr_assert_true(g(), 3)" in asserts.steps[2]
    listed = parse_suite("visible", ["assert f(1) == 2", "assert f(2) == 4"])
    assert listed.size == 2
    humaneval = parse_suite("visible", HUMANEVAL_TESTS, "add")
    assert humaneval.steps[-1] == "check(add)"
    io = parse_suite("hidden", [{"stdin": "1", "stdout": "2"}, {"stdin": "", "stdout": ""}])
    assert io.kind == "io" and io.cases == (("1", "2"), ("", ""))
    columns = parse_suite("visible", {"inputs": ["1", "2"], "outputs": ["2", "4"]})
    assert columns.cases == (("1", "2"), ("2", "4"))


@pytest.mark.parametrize(
    "tests, entry_point, message",
    [
        ("assert f(1) ==", None, "not valid Python"),
        ("x = f(1)", None, "no assert"),
        (HUMANEVAL_TESTS, None, "no entry_point"),
        (HUMANEVAL_TESTS, "not an identifier", "identifier"),
        ([{"stdin": "1"}], None, "'stdin' and 'stdout'"),
        ([{"stdin": 1, "stdout": "2"}], None, "must be strings"),
        ({"inputs": ["1"], "outputs": []}, None, "same length"),
        ([], None, "no cases"),
        (42, None, "got int"),
    ],
)
def test_parse_suite_rejects_malformed_tests(tests, entry_point, message):
    with pytest.raises(TestSpecError, match=message):
        parse_suite("visible", tests, entry_point)


def test_report_must_be_complete_and_carry_the_nonce():
    suites = [
        parse_suite("visible", "assert f() == 1\nassert f() == 1"),
        parse_suite("hidden", [{"stdin": "", "stdout": ""}]),
    ]
    good = {
        "nonce": "n0",
        "suites": [
            {"name": "visible", "results": [(True, ""), (True, "")]},
            {"name": "hidden", "results": [(True, "")]},
        ],
    }

    def read(report, returncode=0):
        result = sandbox.RunResult(returncode, repr(report).encode(), b"", False, False, 0.1)
        return code_module._read_report(result, "n0", suites)

    assert read(good) == [[(True, ""), (True, "")], [(True, "")]]
    forged = [
        ({**good, "nonce": "guess"}, "nonce"),
        ({"suites": good["suites"]}, "nonce"),
        ({**good, "suites": good["suites"][:1]}, "number of suites"),
        ({**good, "suites": good["suites"][::-1]}, "wrong suites"),
        ({**good, "suites": [{"name": "visible", "results": [(True, "")]}, good["suites"][1]]}, "incomplete"),
        (
            {**good, "suites": [{"name": "visible", "results": [(1, ""), (1, "")]}, good["suites"][1]]},
            "malformed",
        ),
        ("all tests passed", "nonce"),
    ]
    for report, message in forged:
        with pytest.raises(ValueError, match=message):
            read(report)
    with pytest.raises(ValueError, match="exited with status 1"):
        read(good, returncode=1)
    with pytest.raises(ValueError, match="malformed"):
        code_module._read_report(
            sandbox.RunResult(0, b"{'nonce': 'n0', 'suites': [", b"", False, False, 0.1), "n0", suites
        )


def test_unparsable_and_malformed_items_do_not_run():
    verdicts = verify_batch(
        [
            {"completion": "I think the answer is add(a, b).", "tests": "assert add(1, 2) == 3"},
            {"completion": ADD, "tests": 42},
        ],
        unsafe_no_sandbox=True,
    )
    assert [v.status for v in verdicts] == ["unparsable", "error"]
    assert all(v.reward == 0.0 for v in verdicts)
    assert "tests must be" in verdicts[1].reason and verdicts[1].extracted.startswith("def add")


def test_registered_as_code_verifier():
    assert get_verifier("code") is verify_batch


# ----------------------------------------------------------------------------------------------------
# sandboxed runs


@needs_sandbox
def test_honest_and_wrong_solutions_both_formats():
    items = [
        {"completion": ADD, "tests": "assert add(1, 2) == 3\nassert add(-1, 1) == 0"},
        {"completion": SUB, "tests": "assert add(1, 2) == 3\nassert add(-1, 1) == 0"},
        {"completion": ADD, "tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]},
        {"completion": ADD, "tests": HUMANEVAL_TESTS, "entry_point": "add"},
        {"completion": SUB, "tests": HUMANEVAL_TESTS, "entry_point": "add"},
        {"completion": DOUBLE, "tests": [{"stdin": "3\n", "stdout": "6\n"}, {"stdin": "-4", "stdout": "-8"}]},
        {"completion": DOUBLE, "tests": [{"stdin": "3", "stdout": "7"}]},
        {"completion": DOUBLE, "tests": {"inputs": ["1", "2"], "outputs": ["2", "4"]}},
    ]
    v = verify_batch(items, workers=2)
    assert [x.status for x in v] == [
        "correct",
        "incorrect",
        "correct",
        "correct",
        "incorrect",
        "correct",
        "incorrect",
        "correct",
    ], [x.reason for x in v]
    assert [x.reward for x in v] == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert v[0].reason == "all tests passed (2 visible)"
    assert v[1].reason == "visible tests failed (0/2 passed): line 1 `assert add(1, 2) == 3`: -1 != 3"
    assert "(2/3 passed): line 6 `assert candidate(1, 2) == 3`: -1 != 3" in v[4].reason
    assert v[6].reason == "visible tests failed (0/1 passed): case 1: output line 1: got '6', expected '7'"
    assert v[0].extracted == "def add(a, b):\n    return a + b\n"
    assert all(x.elapsed_ms > 0 for x in v)


@needs_sandbox
def test_stdout_comparison_rules():
    def io(program: str, expected: str) -> str:
        item = {"completion": solution(program), "tests": [{"stdin": "", "stdout": expected}]}
        return verify_batch([item])[0]

    assert io(
        "print('a  ')\nprint('b')\nprint()\nprint()", "a\nb\n"
    ).correct  # trailing whitespace, blank lines
    assert io("print('a')\nprint('b')", "a\nb").correct
    assert "output has 1 line(s), expected 2" in io("print('a')", "a\nb").reason  # missing line
    assert "output has 3 line(s), expected 2" in io("print('a\\nb\\nc')", "a\nb").reason  # extra line
    assert "got 'a'" in io("print('a')", "ab").reason  # truncated last line
    assert "got ' a'" in io("print(' a')", "a").reason  # leading whitespace counts
    assert not io("print('a\\n\\nb')", "a\nb").correct  # inner blank lines count
    assert io("print('a')\nexit()\nprint('b')", "a").correct  # exit()/quit() work without ``site``
    assert "exit status 3" in io("print('a')\nquit(3)", "a").reason


@needs_sandbox
def test_runtime_and_syntax_errors_are_incorrect_with_the_error():
    items = [
        {"completion": solution("def add(a, b)\n    return a + b"), "tests": "assert add(1, 2) == 3"},
        {"completion": solution("print(int(input()) +* 2)"), "tests": [{"stdin": "1", "stdout": "2"}]},
        {"completion": solution("def add(a, b):\n    return a / 0"), "tests": "assert add(1, 2) == 3"},
        {"completion": solution("print(1 / int(input()))"), "tests": [{"stdin": "0", "stdout": "0"}]},
        {"completion": solution("raise ValueError('bad import')"), "tests": "assert add(1, 2) == 3"},
    ]
    v = verify_batch(items)
    assert [x.status for x in v] == ["incorrect"] * 5
    assert "the solution failed to load: SyntaxError" in v[0].reason
    assert "SyntaxError" in v[1].reason and "exit status 1" in v[1].reason
    assert "ZeroDivisionError: add(1, 2) raised ZeroDivisionError: division by zero" in v[2].reason
    assert "ZeroDivisionError: division by zero" in v[3].reason
    assert "ValueError: bad import" in v[4].reason


@needs_sandbox
def test_timeout_status():
    items = [
        {
            "completion": solution("def add(a, b):\n    while True:\n        pass"),
            "tests": "assert add(1, 2) == 3",
        },
        {"completion": solution("import time\ntime.sleep(30)"), "tests": [{"stdin": "", "stdout": ""}]},
    ]
    v = verify_batch(items, timeout=1.5, workers=2)
    assert [x.status for x in v] == ["timeout", "timeout"]
    assert v[0].reason == "exceeded the 1.5s wall-clock limit"
    assert all(x.reward == 0.0 and x.elapsed_ms < 4000 for x in v)


@needs_sandbox
def test_visible_and_hidden_tests():
    square = solution("def square(x):\n    return x * x")
    hardcoded = solution("def square(x):\n    return {2: 4}.get(x, 0)")
    wrong_visible = solution("def square(x):\n    return 0 if x == 2 else x * x")
    # a program for the stdin case that is also a module for the asserts (``__name__`` is not "__main__")
    both = solution(
        "def double(n):\n    return 2 * n\nif __name__ == '__main__':\n    print(double(int(input())))"
    )
    tests, hidden = "assert square(2) == 4", "assert square(3) == 9\nassert square(-2) == 4"
    v = verify_batch(
        [
            {"completion": square, "tests": tests, "hidden_tests": hidden},
            {"completion": hardcoded, "tests": tests, "hidden_tests": hidden},
            {"completion": wrong_visible, "tests": tests, "hidden_tests": hidden},
            {
                "completion": both,
                "tests": [{"stdin": "1", "stdout": "2"}],
                "hidden_tests": "assert double(4) == 8",
            },
        ]
    )
    assert [x.status for x in v] == ["correct", "incorrect", "incorrect", "correct"]
    assert v[0].reason == "all tests passed (1 visible, 2 hidden)"
    assert v[1].reason.startswith("hidden tests failed (0/2 passed): line 1 `assert square(3) == 9`: 0 != 9")
    assert v[2].reason.startswith("visible tests failed") and "hidden" not in v[2].reason


@needs_sandbox
def test_rich_test_code_against_the_solution_process():
    """Classes, generators, in-place changes, exceptions and module values cross the process boundary."""
    code = """
    import math
    LIMIT = 10
    class Counter:
        def __init__(self, start):
            self.value = start
        def add(self, k):
            self.value += k
            return self.value
        def __len__(self):
            return self.value
    def evens(n):
        return (i for i in range(n) if i % 2 == 0)
    def sort_in_place(xs):
        xs.sort()
    def checked_sqrt(x):
        if x < 0:
            raise ValueError("negative")
        return math.sqrt(x)
    def pair():
        return (1, [2.5, {"k": None}], {3}, b"x")
    """
    tests = """
    print("tests may print: it does not disturb the report")
    c = Counter(2)
    assert c.add(3) == 5
    assert c.value == 5 and len(c) == 5
    assert list(evens(7)) == [0, 2, 4, 6]
    xs = [3, 1, 2]
    sort_in_place(xs)
    assert xs == [1, 2, 3]
    try:
        checked_sqrt(-1)
        raise AssertionError("no error")
    except ValueError as e:
        assert "negative" in str(e)
    assert checked_sqrt(9) == 3
    assert LIMIT == 10 and math.floor(2.5) == 2
    assert pair() == (1, [2.5, {"k": None}], {3}, b"x")
    assert math.isclose(checked_sqrt(2) ** 2, 2)  # the solution's ``math``, re-imported by the judge
    """
    v = verify_batch([{"completion": solution(code), "tests": textwrap.dedent(tests)}])[0]
    assert v.correct, v.reason


@needs_sandbox
def test_workers_keep_order_and_samples_route_here():
    items = [
        {"completion": solution(f"def f():\n    return {i}"), "tests": f"assert f() == {i if i % 3 else -1}"}
        for i in range(8)
    ]
    v = verify_batch(items, workers=3)
    assert [x.correct for x in v] == [bool(i % 3) for i in range(8)]
    sample = Sample(
        id="s", prompt="add", verifier="code", gold={"tests": HUMANEVAL_TESTS, "entry_point": "add"}
    )
    assert [x.status for x in verify_samples([sample, sample], [ADD, SUB])] == ["correct", "incorrect"]


@needs_sandbox
def test_cli_verify_code(tmp_path):
    rows = [
        {"id": "a", "completion": ADD, "tests": "assert add(1, 2) == 3"},
        {"id": "b", "completion": SUB, "tests": "assert add(1, 2) == 3"},
        {"id": "c", "completion": "no code", "tests": "assert add(1, 2) == 3"},
    ]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["verify", "code", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(v["id"], v["status"]) for v in verdicts] == [
        ("a", "correct"),
        ("b", "incorrect"),
        ("c", "unparsable"),
    ]


@needs_sandbox
def test_sandbox_environment():
    probe = textwrap.dedent(
        """
        import os, socket
        print(sorted(os.listdir("/")))
        print(sorted(os.environ))
        print(os.getcwd(), os.path.exists("/etc/passwd"), os.path.exists("/proc/self"))
        try:
            socket.create_connection(("1.1.1.1", 80), timeout=1)
            print("online")
        except OSError:
            print("offline")
        try:
            with open("/tmp/big", "wb") as fh:
                fh.write(b"0" * (8 << 20))
            print("wrote 8 MiB")
        except OSError as e:
            print("write failed", e.errno)
        """
    )
    limits = sandbox.Limits(wall_seconds=10, tmpfs_bytes=4 << 20)
    result = sandbox.run_python(["-c", probe], b"", limits)
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0, result.stderr
    system = {"bin", "dev", "lib", "lib32", "lib64", "libx32", "sbin", "tmp", "usr"}
    assert {"dev", "tmp", "usr"} <= set(ast.literal_eval(lines[0])) <= system  # no etc, home, root, proc
    assert lines[1] == str(["HOME", "LANG", "PATH", "PWD"])
    assert lines[2:] == ["/tmp False False", "offline", "write failed 28"]  # 28: ENOSPC


@needs_sandbox
def test_run_caps_output_and_wall_clock():
    limits = sandbox.Limits(wall_seconds=2, output_bytes=1000)
    flood = sandbox.run_python(["-c", "while True: print('x' * 100)"], b"", limits)
    assert flood.output_overflow and flood.returncode is None and len(flood.stdout) == 1000
    spin = sandbox.run_python(
        ["-c", "import signal\nsignal.signal(15, signal.SIG_IGN)\nwhile True: pass"], b"", limits
    )
    assert spin.timed_out and spin.returncode is None and spin.seconds < 4
    echo = sandbox.run_python(
        ["-c", "import sys; sys.stdout.write(sys.stdin.read())"], b"y" * 200_000, limits
    )
    assert echo.output_overflow  # stdin larger than a pipe buffer is fed while output is read


def test_unsafe_mode_leaves_no_process_behind():
    def unsafe_processes() -> list[str]:
        found = []
        for cwd in Path("/proc").glob("[0-9]*/cwd"):
            try:
                if "rlvr-unsafe-" in os.readlink(cwd):
                    found.append(cwd.parent.name)
            except OSError:
                pass
        return found

    daemon = "import os, time\nif os.fork() == 0:\n    time.sleep(100)\ndef f():\n    return 1\nprint(1)"
    items = [
        {"completion": solution(daemon), "tests": "assert f() == 1"},  # leaves a child behind
        {"completion": solution(daemon), "tests": [{"stdin": "", "stdout": "1"}]},
        {"completion": solution("import time\ntime.sleep(100)"), "tests": "assert f() == 1"},
    ]
    verdicts = verify_batch(items, timeout=1.5, unsafe_no_sandbox=True)
    assert [v.status for v in verdicts] == ["correct", "correct", "timeout"]
    deadline = time.monotonic() + 2
    while unsafe_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not unsafe_processes()


def test_refuses_without_bubblewrap_unless_unsafe(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    monkeypatch.setattr(sandbox, "_probe_ok", set())
    item = {"completion": ADD, "tests": "assert add(1, 2) == 3"}
    with pytest.raises(RuntimeError, match="bubblewrap .* not installed.*--unsafe-no-sandbox"):
        verify_batch([item])
    v = verify_batch([item], unsafe_no_sandbox=True)[0]
    assert v.correct and "WITHOUT the sandbox" in v.reason

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "a", **item}) + "\n")
    result = CliRunner().invoke(app, ["verify", "code", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 2 and "bubblewrap" in result.output and not out.exists()
    result = CliRunner().invoke(
        app, ["verify", "code", "--input", str(src), "--output", str(out), "--unsafe-no-sandbox"]
    )
    assert result.exit_code == 0 and json.loads(out.read_text())["status"] == "correct"
