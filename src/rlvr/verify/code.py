"""The ``code`` verifier: run the completion's last Python block against its tests in a sandbox.

Each item is a dict with ``completion`` and ``tests`` (shown in the prompt), optional ``hidden_tests``
(kept for the verifier) and an optional ``entry_point``. A test suite is either

* Python test code with ``assert`` statements that call the solution (MBPP style; a list of assert
  strings is joined), or HumanEval's ``def check(candidate)`` run as ``check(<entry_point>)``; or
* stdin/stdout cases: a list of ``{"stdin": ..., "stdout": ...}`` (or ``{"inputs": [...],
  "outputs": [...]}``). The program's whole stdout must match the expected output line by line;
  trailing whitespace and trailing blank lines are ignored, missing or extra lines fail.

Reward 1 needs every visible and hidden test to pass, confirmed by a complete report from the harness
(``_code_harness.py``) that carries this run's random nonce, has one result per test, and arrives with
exit status 0. Tests never touch the sandbox's disk; they reach the harness over a pipe after the
solution's processes have been forked, and solution values reach the tests only as exact builtin types.
"""

from __future__ import annotations

import ast
import functools
import marshal
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.records import Verdict
from rlvr.verify.sandbox import Limits, RunResult, check_sandbox, run_python, sandbox_python

__all__ = ["DEFAULT_TIMEOUT", "TestSpecError", "extract_code", "verify_batch", "verify_one"]

DEFAULT_TIMEOUT = 10.0
_PYTHON_FENCES = ("", "python", "python3", "py")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TestSpecError(ValueError):
    """An item's tests are malformed (a data problem, not the solution's fault)."""

    __test__ = False  # not a pytest class


def extract_code(completion: str) -> str | None:
    """The last closed ```python / ```py / bare ``` block of ``completion`` (None if there is none).

    Fences are read line by line, so the closing fence of another language's block is never taken
    for the opening of a bare one.
    """
    found, language, body = None, None, []
    for line in (completion or "").splitlines(keepends=True):
        fence = line.strip()
        if language is None:
            if fence.startswith("```"):
                language, body = fence[3:].strip().lower(), []
        elif fence == "```":
            if language in _PYTHON_FENCES:
                found = "".join(body)
            language = None
        else:
            body.append(line)
    return found


# ----------------------------------------------------------------------------------------------------
# test suites


@dataclass(frozen=True)
class Suite:
    """One test suite ready for the harness: assert ``steps`` (sources) or stdin/stdout ``cases``."""

    name: str
    kind: str  # "assert" or "io"
    steps: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()  # the original test source, to quote failing lines
    cases: tuple[tuple[str, str], ...] = ()
    entry_point: str | None = None

    @property
    def size(self) -> int:
        return len(self.steps) if self.kind == "assert" else len(self.cases)


class _AssertRewriter(ast.NodeTransformer):
    """``assert a == b`` -> ``__rlvr_assert_equal(a, b, line)``; other asserts -> ``__rlvr_assert_true``.

    The calls carry the original line number, since the steps are re-generated source.
    """

    def visit_Assert(self, node: ast.Assert) -> ast.Expr:
        test = node.test
        line = ast.Constant(node.lineno)
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            args = [test.left, test.comparators[0], line]
            name = "__rlvr_assert_equal"
        else:
            args = [test, line]
            name = "__rlvr_assert_true"
        call = ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])
        return ast.copy_location(ast.Expr(call), node)


@functools.lru_cache(maxsize=4096)
def _assert_suite(name: str, source: str, entry_point: str | None) -> Suite:
    try:
        tree = ast.parse(source, filename=f"<{name} tests>")
    except SyntaxError as e:
        raise TestSpecError(f"{name} tests are not valid Python: {e.msg} (line {e.lineno})") from None
    defines_check = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)
    has_assert = any(isinstance(n, ast.Assert) for n in ast.walk(tree))
    if defines_check and entry_point is None:
        raise TestSpecError(f"{name} tests define check(candidate) but the item has no entry_point")
    if not has_assert and not (defines_check and entry_point):
        raise TestSpecError(f"{name} tests contain no assert statement")
    tree = ast.fix_missing_locations(_AssertRewriter().visit(tree))
    steps = [ast.unparse(stmt) for stmt in tree.body]
    if defines_check and entry_point:
        steps.append(f"check({entry_point})")
    return Suite(
        name, "assert", steps=tuple(steps), lines=tuple(source.splitlines()), entry_point=entry_point
    )


def _io_suite(name: str, tests: Any) -> Suite:
    if isinstance(tests, dict):
        inputs, outputs = tests.get("inputs"), tests.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise TestSpecError(f"{name} tests: 'inputs' and 'outputs' must be lists of the same length")
        pairs = list(zip(inputs, outputs, strict=True))
    else:
        pairs = []
        for i, case in enumerate(tests):
            if not isinstance(case, dict) or "stdin" not in case or "stdout" not in case:
                raise TestSpecError(f"{name} tests: case {i} must be a dict with 'stdin' and 'stdout'")
            pairs.append((case["stdin"], case["stdout"]))
    for i, (stdin, stdout) in enumerate(pairs):
        if not isinstance(stdin, str) or not isinstance(stdout, str):
            raise TestSpecError(f"{name} tests: case {i} stdin and stdout must be strings")
    if not pairs:
        raise TestSpecError(f"{name} tests have no cases")
    return Suite(name, "io", cases=tuple(pairs))


def parse_suite(name: str, tests: Any, entry_point: str | None = None) -> Suite:
    """Turn an item's ``tests``/``hidden_tests`` value into a :class:`Suite` (TestSpecError if malformed)."""
    if entry_point is not None and not (isinstance(entry_point, str) and _IDENTIFIER.fullmatch(entry_point)):
        raise TestSpecError(f"entry_point must be a Python identifier, got {entry_point!r}")
    if isinstance(tests, str):
        return _assert_suite(name, tests, entry_point)
    if isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests):
        return _assert_suite(name, "\n".join(tests), entry_point)
    if isinstance(tests, (list, dict)):
        return _io_suite(name, tests)
    raise TestSpecError(
        f"{name} tests must be Python test code, a list of asserts or a list of stdin/stdout cases, "
        f"got {type(tests).__name__}"
    )


# ----------------------------------------------------------------------------------------------------
# one run

# The sandboxed interpreter reads the harness as a code object (frame 0 on stdin) and runs it: compiling
# its source on every run would cost more than the rest of the start-up.
_BOOTSTRAP = """\
import marshal, os
def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            raise EOFError("stdin closed")
        data += chunk
    return data
exec(marshal.loads(read(int.from_bytes(read(8), "little"))))
"""
_COMPILE = "import marshal, sys; sys.stdout.buffer.write(marshal.dumps(compile(sys.stdin.read(), '<rlvr-harness>', 'exec')))"
_harness_lock = threading.Lock()
_harness_code: dict[str, bytes] = {}


def _harness_frame() -> bytes:
    """``_code_harness.py`` compiled by the sandbox's interpreter (once per process), as frame 0."""
    python = sandbox_python()
    with _harness_lock:
        if python not in _harness_code:
            source = Path(__file__).with_name("_code_harness.py").read_bytes()
            done = subprocess.run([python, "-S", "-I", "-c", _COMPILE], input=source, capture_output=True)
            if done.returncode != 0:
                raise RuntimeError(f"{python} cannot compile the code harness: {done.stderr.decode()[-500:]}")
            _harness_code[python] = done.stdout
    code = _harness_code[python]
    return len(code).to_bytes(8, "little") + code


def _frame(obj: Any) -> bytes:
    data = marshal.dumps(obj, 4)
    return len(data).to_bytes(8, "little") + data


def _payload(solution: str, suites: Sequence[Suite], limits: Limits, nonce: str, sandbox: bool) -> bytes:
    io_inputs, described, offset = [], [], 0
    for suite in suites:
        if suite.kind == "assert":
            described.append(
                {
                    "name": suite.name,
                    "kind": "assert",
                    "steps": list(suite.steps),
                    "entry_point": suite.entry_point,
                }
            )
        else:
            io_inputs += [stdin for stdin, _ in suite.cases]
            expected = [stdout for _, stdout in suite.cases]
            described.append({"name": suite.name, "kind": "io", "offset": offset, "expected": expected})
            offset += len(suite.cases)
    setup = {
        "solution": solution,
        "io_inputs": io_inputs,
        "rpc": any(s.kind == "assert" for s in suites),
        "rlimits": limits.rlimits(process_limit=sandbox),
        "output_limit": limits.output_bytes,
        "sweep": sandbox,
    }
    return _harness_frame() + _frame(setup) + _frame({"nonce": nonce, "suites": described})


def _read_report(result: RunResult, nonce: str, suites: Sequence[Suite]) -> list[list[tuple[bool, str]]]:
    """Per-suite results from the harness report; ValueError unless it is complete and authentic."""
    if result.returncode != 0:
        raise ValueError(f"the harness exited with status {result.returncode}")
    try:
        report = ast.literal_eval(result.stdout.decode("utf-8"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise ValueError("the harness report is malformed") from None
    if not isinstance(report, dict) or report.get("nonce") != nonce:
        raise ValueError("the harness report does not carry this run's nonce")
    got = report.get("suites")
    if not isinstance(got, list) or len(got) != len(suites):
        raise ValueError("the harness report has the wrong number of suites")
    out = []
    for suite, entry in zip(suites, got, strict=True):
        if not isinstance(entry, dict) or entry.get("name") != suite.name:
            raise ValueError("the harness report names the wrong suites")
        results = entry.get("results")
        if not isinstance(results, list) or len(results) != suite.size:
            raise ValueError(f"the harness report for the {suite.name} tests is incomplete")
        if not all(isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], bool) for r in results):
            raise ValueError(f"the harness report for the {suite.name} tests is malformed")
        out.append(results)
    return out


def _failure_reason(suite: Suite, results: list[tuple[bool, str]]) -> str:
    passed = sum(ok for ok, _ in results)
    index, message = next((i, m) for i, (ok, m) in enumerate(results) if not ok)
    if suite.kind == "io":
        where = f"case {index + 1}"
    else:
        where = f"statement {index + 1}"
        m = re.match(r"line (\d+): ", message)
        if m and 0 < int(m.group(1)) <= len(suite.lines):
            where = f"line {m.group(1)} `{suite.lines[int(m.group(1)) - 1].strip()[:200]}`"
            message = message[m.end() :]
    return f"{suite.name} tests failed ({passed}/{len(results)} passed): {where}: {message}"


def verify_one(
    item: dict[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    unsafe_no_sandbox: bool = False,
    limits: Limits | None = None,
) -> Verdict:
    """Grade one item (see the module docstring). Never raises for bad solutions or bad test data."""
    start = time.perf_counter()

    def verdict(reward: float, status: str, reason: str, code: str | None = None) -> Verdict:
        return Verdict(reward, status, reason, code, (time.perf_counter() - start) * 1000)

    code = extract_code(str(item.get("completion") or ""))
    if code is None:
        return verdict(0.0, "unparsable", "no ```python code block in the completion")
    try:
        suites = [parse_suite("visible", item.get("tests"), item.get("entry_point"))]
        if item.get("hidden_tests") is not None:
            suites.append(parse_suite("hidden", item["hidden_tests"], item.get("entry_point")))
    except TestSpecError as e:
        return verdict(0.0, "error", str(e), code)
    limits = limits or Limits(wall_seconds=timeout)
    nonce = secrets.token_hex(16)
    payload = _payload(code, suites, limits, nonce, sandbox=not unsafe_no_sandbox)
    result = run_python(["-c", _BOOTSTRAP], payload, limits, sandbox=not unsafe_no_sandbox)
    note = " (run WITHOUT the sandbox)" if unsafe_no_sandbox else ""
    if result.timed_out:
        return verdict(0.0, "timeout", f"exceeded the {limits.wall_seconds:g}s wall-clock limit{note}", code)
    if result.output_overflow:
        return verdict(
            0.0, "incorrect", f"the harness output exceeded {limits.output_bytes} bytes{note}", code
        )
    try:
        per_suite = _read_report(result, nonce, suites)
    except ValueError as e:
        tail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f"; stderr: {tail[-1][:300]}" if tail else ""
        return verdict(0.0, "incorrect", f"no valid test report: {e}{detail}{note}", code)
    failures = [
        _failure_reason(s, r) for s, r in zip(suites, per_suite, strict=True) if not all(ok for ok, _ in r)
    ]
    if failures:
        return verdict(0.0, "incorrect", "; ".join(failures) + note, code)
    counts = ", ".join(f"{len(r)} {s.name}" for s, r in zip(suites, per_suite, strict=True))
    return verdict(1.0, "correct", f"all tests passed ({counts}){note}", code)


def verify_batch(
    items: Sequence[dict[str, Any]],
    *,
    workers: int | None = 2,
    timeout: float = DEFAULT_TIMEOUT,
    unsafe_no_sandbox: bool = False,
    **options: Any,
) -> list[Verdict]:
    """Grade ``items`` with ``workers`` concurrent sandboxes; order preserved.

    ``timeout`` is the wall-clock limit per item (all of its tests). Raises
    :class:`~rlvr.verify.sandbox.SandboxUnavailable` (a RuntimeError) when bubblewrap cannot run,
    unless ``unsafe_no_sandbox`` is set. ``options`` may hold ``limits`` (a :class:`Limits`); other
    options, meant for other verifiers, are ignored.
    """
    limits = options.get("limits")
    if not items:
        return []
    if not unsafe_no_sandbox:
        check_sandbox()
    workers = max(1, min(int(workers or 2), len(items)))

    def grade(item: dict[str, Any]) -> Verdict:
        return verify_one(item, timeout=timeout, unsafe_no_sandbox=unsafe_no_sandbox, limits=limits)

    if workers == 1:
        return [grade(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(grade, items))
