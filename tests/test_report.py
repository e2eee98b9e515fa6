import base64
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.eval.runner import summarize
from rlvr.io import atomic_write_json, write_jsonl
from rlvr.report.report import build_report, load_run, render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<script>alert("x")</script><img src="http://evil.example/x.png">'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _log(steps, gain, seed):
    rng = random.Random(seed)
    out = []
    for i in range(steps):
        acc = min(1.0, max(0.0, 0.2 + gain * i / steps + rng.gauss(0, 0.05)))
        out.append(
            {
                "step": i + 1,
                "reward/mean": acc,
                "accuracy": acc,
                "response_length/mean": 60 - 20 * i / steps + rng.gauss(0, 2),
                "entropy": 0.9 - 0.3 * i / steps,
                "kl": 0.01 * i / steps,
                "clip_frac": 0.02 + rng.random() * 0.01,
                "status": {"correct": 4, "incorrect": 3, "unparsable": 1},
            }
        )
    return out


def _rows(n_problems=12, n=8, seed=0, families=True):
    rng = random.Random(seed)
    rows = []
    for p in range(n_problems):
        skill = 0.15 + 0.06 * p
        for k in range(n):
            ok = rng.random() < skill
            answer = "7" if ok else str(rng.randint(0, 5))
            completion = f"Thinking... the answer is \\boxed{{{answer}}}"
            if p == 0 and k == 0:
                completion = HOSTILE  # data shown in the page must be escaped
            rows.append(
                {
                    "problem_id": f"q{p}",
                    "family_id": f"fam{p % 2}" if families else None,
                    "variation_id": f"var{p % 3}" if families else None,
                    "sample_id": k,
                    "completion": completion,
                    "reward": float(ok),
                    "status": "correct" if ok else "incorrect",
                    "reason": "",
                    "extracted": answer,
                    "elapsed_ms": 1.0,
                    "correct": ok,
                    "answer": answer,
                    "tokens": 40 + rng.randint(0, 20),
                    "truncated": False,
                }
            )
    return rows


def _eval_dir(path: Path, seed=0) -> Path:
    rows = _rows(seed=seed)
    write_jsonl(path / "samples.jsonl", rows)
    atomic_write_json(
        path / "summary.json", summarize(rows, {"model": HOSTILE, "task": "family:test", "n": 8})
    )
    return path


def _block(k, n):
    from rlvr.eval.stats import wilson_interval

    return {"accuracy": k / n, "n": n, "correct": k, "ci95": list(wilson_interval(k, n))}


def _run_dir(path: Path) -> Path:
    """A folder laid out as `rlvr demo --control` writes it."""
    write_jsonl(path / "train" / "log.jsonl", _log(60, 0.4, 0))
    write_jsonl(path / "control" / "log.jsonl", _log(60, 0.02, 1))
    atomic_write_json(
        path / "train" / "manifest.json",
        {"command": ["rlvr", "demo", HOSTILE], "config": {"lr": 1e-6}, "git_commit": "abc", "created": "now"},
    )
    paired = {"delta": 0.22, "ci95": [0.15, 0.29], "p_value": 1e-5, "improved": 70, "regressed": 4}
    atomic_write_json(
        path / "summary.json",
        {
            "model": "smollm2",
            "algorithm": "grpo",
            "wall_seconds": 812.5,
            "before": _block(90, 300),
            "after": _block(156, 300),
            "paired": paired,
            "control": {
                "rewards": "Bernoulli",
                "after": _block(93, 300),
                "paired": {**paired, "p_value": 0.8},
            },
        },
    )
    for name, seed in (("eval_before", 1), ("eval_after", 2), ("eval_control", 3)):
        _eval_dir(path / name, seed=seed)
    return path


def _images(page: str) -> list[bytes]:
    urls = re.findall(r'<img src="([^"]+)"', page)
    assert urls, "no images"
    out = []
    for url in urls:
        assert url.startswith("data:image/png;base64,")
        data = base64.b64decode(url.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_MAGIC) and len(data) > 2000
        out.append(data)
    return out


def _assert_offline(page: str) -> None:
    stripped = re.sub(r'src="data:image/png;base64,[^"]+"', "", page)
    assert not re.search(r"(?:src|href)=\"(?!#)", stripped), "a link or source that is not an anchor"
    assert not re.search(r"url\(|@import|<link|<script|<iframe", stripped, re.I), "external resource"
    # The only URL is the one inside the (escaped) hostile test string.
    assert set(re.findall(r"https?://[^\s\"'&<]+", stripped)) <= {"http://evil.example/x.png"}


def test_report_run_dir_with_control(tmp_path):
    run = _run_dir(tmp_path / "run")
    out = build_report(run)
    page = out.read_text()
    assert out == run / "report.html"
    for title in (
        "Training curves",
        "Accuracy with 95% intervals",
        "Paired comparison on the same problems",
        "after random rewards (control)",
        "control vs before",
        "Reward-hacking audits",
        "pass@k",
        "Robustness per family",
    ):
        assert title in page
    assert len(_images(page)) >= 4  # curves, accuracy bars, pass@k, scaling (+ family plots)
    assert "<td>algorithm</td><td>grpo</td>" in page and "812.500" in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    _assert_offline(page)
    audit = json.loads((run / "audit.json").read_text())
    assert audit["audits"]["control"]["figures"]["train_accuracy"]["control_gain"] < 0.1
    assert [Path(f).parent.name for f in audit["sources"]["completions"]] == ["eval_after"]
    assert audit["sources"]["log"].endswith("train/log.jsonl")
    assert "Real run against the random-reward control" in page
    assert "no contamination.json" in page  # empty section: a one-line note, no image


def test_report_eval_dir_with_families_and_contamination(tmp_path):
    ev = _eval_dir(tmp_path / "ev")
    atomic_write_json(
        ev / "contamination.json",
        {
            "summary": {"n": 13, "eval_items": 12, "contaminated": 1, "contaminated_share": 1 / 12},
            "items": [{"id": "q3", "share": 0.5, "n_matched": 4, "contaminated": True, "spans": [HOSTILE]}],
        },
    )
    # A hand-edited audit.json is data too: its keys and values are escaped.
    hostile_audit = {
        "audits": {"loops": {"figures": {HOSTILE: HOSTILE}, "flags": [], "note": ""}},
        "flags": [],
    }
    atomic_write_json(ev / "audit.json", hostile_audit)
    data = load_run(ev)
    assert list(data.evals) == ["eval"]
    page = render(data)
    for title in (
        "Robustness per family",
        "95% two-level bootstrap",
        "Contamination",
        "Most overlapping eval items",
        "Accuracy against samples and tokens spent",
        "chi-square p",
    ):
        assert title in page
    assert "fam0" in page and "var2" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "no training log" in page
    _images(page)
    _assert_offline(page)


def test_report_empty_folder_has_only_notes(tmp_path):
    page = build_report(tmp_path, tmp_path / "r.html").read_text()
    assert "<img" not in page
    assert "no training log" in page and "no accuracy in summary.json" in page


def test_report_command(tmp_path):
    ev = _eval_dir(tmp_path / "ev")
    result = CliRunner().invoke(app, ["report", str(ev), "--out", str(tmp_path / "x.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.html").stat().st_size > 10_000
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "log.jsonl").write_text('{"step": 1}\n{oops\n')
    result = CliRunner().invoke(app, ["report", str(bad)])
    assert result.exit_code == 2 and "log.jsonl:2" in result.output


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh --with-chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    run = _run_dir(tmp_path / "run")
    out = build_report(run)
    url = out.resolve().as_uri()

    dom = _chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for title in ("Training curves", "Accuracy with 95% intervals", "pass@k", "Reward-hacking audits"):
        assert title in dom.stdout
    assert len(_images(dom.stdout)) >= 4
    assert "<script>alert" not in dom.stdout  # the hostile completion stayed text

    shot = tmp_path / "page.png"
    res = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", url], tmp_path)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 50_000  # a blank page is a few kB


def test_report_single_sample_families_are_not_plotted(tmp_path):
    rows = [dict(r, variation_id=r["problem_id"]) for r in _rows(n_problems=6, n=1)]
    write_jsonl(tmp_path / "samples.jsonl", rows)
    atomic_write_json(tmp_path / "summary.json", summarize(rows))
    page = render(load_run(tmp_path))
    assert "one sample per variation" in page
    assert 'alt="family fam0"' not in page
    assert "needs an eval with several samples per problem" in page
