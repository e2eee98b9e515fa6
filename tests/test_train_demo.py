"""End-to-end `rlvr demo` on the embedded SmolLM2-135M-Instruct: 2 training steps and a small eval set."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    from rlvr.cli import app

    out = tmp_path / "demo"
    res = CliRunner().invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--steps",
            "2",
            "--eval-n",
            "12",
            "--control",
            "sampling.max_new_tokens=40",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "addition" and summary["algorithm"] == "grpo" and summary["steps"] == 2
    for block in (summary["before"], summary["after"], summary["control"]["after"]):
        assert block["n"] == 12 and 0 <= block["accuracy"] <= 1
        lo, hi = block["ci95"]
        assert lo <= block["accuracy"] <= hi
    assert 0 <= summary["paired"]["p_value"] <= 1
    assert summary["control"]["rewards"].startswith("Bernoulli")
    assert (out / "reward.png").stat().st_size > 1000
    log = [json.loads(line) for line in (out / "train" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    manifest = json.loads((out / "train" / "manifest.json").read_text())
    assert manifest["config"]["sampling"]["max_new_tokens"] == 40  # the override reached the run


def test_demo_rejects_a_bad_override_before_loading_anything(tmp_path):
    from rlvr.cli import app

    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "train.bogus=1"])
    assert res.exit_code == 2 and "train.bogus: unknown key" in res.output
    assert not (tmp_path / "d").exists()
