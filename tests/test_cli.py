"""The `rlvr` command: every stage's sub-commands are there; shared options behave."""

import json

from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.verify.commands import parse_options

runner = CliRunner()


def test_help_lists_every_command():
    out = runner.invoke(app, ["--help"]).output
    for cmd in (
        "verify",
        "tasks",
        "train",
        "demo",
        "eval",
        "stats",
        "compare",
        "contamination",
        "audit",
        "report",
    ):
        assert cmd in out, cmd


def test_tasks_lists_builtins():
    res = runner.invoke(app, ["tasks"])
    assert res.exit_code == 0
    assert "addition" in res.output and "family:aiw" in res.output and "gym:" in res.output


def test_parse_options():
    assert parse_options(["mode=loose", "partial_credit=true", "n=3"]) == {
        "mode": "loose",
        "partial_credit": True,
        "n": 3,
    }


def test_verify_ifeval_with_options(tmp_path):
    item = {
        "id": "a",
        "completion": "first line\nhello, world",
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
    }
    (tmp_path / "in.jsonl").write_text(json.dumps(item) + "\n")
    out = tmp_path / "out.jsonl"
    strict = runner.invoke(app, ["verify", "ifeval", "-i", str(tmp_path / "in.jsonl"), "-o", str(out)])
    assert strict.exit_code == 0, strict.output
    assert json.loads(out.read_text())["status"] == "incorrect"
    loose = runner.invoke(
        app, ["verify", "ifeval", "-i", str(tmp_path / "in.jsonl"), "-o", str(out), "-O", "mode=loose"]
    )
    assert loose.exit_code == 0, loose.output
    # loose mode drops the first/last line, so the comma-free variant "first line" passes
    assert json.loads(out.read_text())["status"] == "correct"


def test_verify_bad_option_and_bad_line_are_clear_errors(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"id": 1, "completion": "\\\\boxed{2}", "answer": "2"}\n{"id": 2, "completion": \n')
    res = runner.invoke(app, ["verify", "math", "-i", str(p), "-o", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 2 and "in.jsonl:2" in res.output
    res = runner.invoke(app, ["verify", "math", "-i", str(p), "-o", str(tmp_path / "o.jsonl"), "-O", "oops"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output


def test_bundled_examples_grade_as_the_readme_says(tmp_path):
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    expected = {
        "math": [
            "correct",
            "correct",
            "incorrect",
            "incorrect",
            "unparsable",
            "correct",
            "correct",
            "incorrect",
        ],
        "ifeval": ["correct", "incorrect", "correct"],
        "code": ["correct", "incorrect", "incorrect", "correct", "timeout"],
    }
    for kind, statuses in expected.items():
        out = tmp_path / f"{kind}.jsonl"
        res = runner.invoke(
            app, ["verify", kind, "-i", str(examples / f"{kind}.jsonl"), "-o", str(out), "--timeout", "3"]
        )
        assert res.exit_code == 0, res.output
        assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == statuses, kind
