"""One self-contained HTML page for a training run or an eval folder.

The page works offline and opens from disk: inline CSS, plots as base64 PNG ``data:`` URLs, no
scripts, fonts or links to anything outside it. Every string that comes from the data (completions,
task names, config values) is HTML-escaped. A section with no data is left out with a one-line note.

Read from the folder (all optional): ``log.jsonl`` and ``control/log.jsonl`` (training curves),
``manifest.json``, ``summary.json`` (an eval summary, or a demo summary with ``before``/``after``/
``control``/``paired``), ``*/summary.json`` of eval sub-folders, ``samples.jsonl``,
``contamination.json`` and ``audit.json`` (the audits are run when it is missing).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rlvr.eval.audit import audit_dir, find_log, read_json, read_log
from rlvr.io import atomic_write_text

MAX_VARIATIONS_PLOTTED = 40  # a family with more variations gets a table row but no plot
MAX_FAMILIES_PLOTTED = 8
MAX_CONTAMINATED_ROWS = 20


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any) -> str:
    """A number to 3 significant decimals (rates as plain decimals), anything else as text; escaped."""
    if isinstance(x, bool) or x is None:
        return esc("—" if x is None else x)
    if isinstance(x, int):
        return esc(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return esc(f"{x:.4g}" if abs(x) >= 1000 or (x != 0 and abs(x) < 0.001) else f"{x:.3f}")
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(v, (int, float)) for v in x):
        return f"[{fmt(x[0])}, {fmt(x[1])}]"
    return esc(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False, default=str))


# ----------------------------------------------------------------------------- data


@dataclass
class RunData:
    path: Path
    log: list[dict[str, Any]] = field(default_factory=list)
    control_log: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> eval summary
    contamination: dict[str, Any] | None = None
    audit: dict[str, Any] | None = None


def is_eval_summary(d: Any) -> bool:
    return isinstance(d, dict) and isinstance(d.get("accuracy"), (int, float)) and "pass_at_k" in d


def load_run(path: str | Path, run_audit: bool = True) -> RunData:
    """Everything a report shows, from a run or eval folder."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a folder")
    data = RunData(
        path=path,
        log=read_log(find_log(path)),
        control_log=read_log(path / "control" / "log.jsonl"),
        manifest=read_json(find_log(path).parent / "manifest.json"),
        summary=read_json(path / "summary.json"),
        contamination=read_json(path / "contamination.json"),
    )
    s = data.summary or {}
    if is_eval_summary(s):
        data.evals["eval"] = s
    for key in ("before", "after", "control"):
        if is_eval_summary(s.get(key)):
            data.evals[key] = s[key]
    if not data.evals:
        for sub in sorted((p for p in path.iterdir() if p.is_dir()), key=_eval_order):
            sub_summary = read_json(sub / "summary.json")
            if is_eval_summary(sub_summary):
                data.evals[sub.name] = sub_summary
    data.audit = read_json(path / "audit.json")
    if data.audit is None and run_audit:
        data.audit = audit_dir(path)
    return data


def _eval_order(folder: Path) -> tuple[int, str]:
    """Sub-folder evals in reading order: before, after, others, control."""
    name = folder.name
    rank = 0 if "before" in name else 1 if "after" in name else 3 if "control" in name else 2
    return rank, name


# ----------------------------------------------------------------------------- sections


@dataclass
class Section:
    id: str
    title: str
    body: str = ""  # HTML; empty means "no data"
    note: str = ""  # shown in place of the body when there is no data


def img(url: str, alt: str) -> str:
    return f'<img src="{url}" alt="{esc(alt)}">'


def table(header: list[str], rows: list[list[Any]], raw: bool = False) -> str:
    """An HTML table; cells are formatted with ``fmt`` unless ``raw`` (already HTML)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def overview_section(data: RunData) -> Section:
    rows: list[list[Any]] = [["folder", str(data.path)]]
    m = data.manifest or {}
    if m.get("command"):
        rows.append(["command", " ".join(map(str, m["command"]))])
    for key in ("git_commit", "git_dirty", "created", "python", "platform"):
        if key in m:
            rows.append([key, m[key]])
    summary = data.summary or {}
    if "before" in summary or "after" in summary:  # a demo summary: what was trained, how long it took
        for key in ("model", "task", "algorithm", "steps", "seed", "wall_seconds", "train_seconds"):
            if isinstance(summary.get(key), (str, int, float)):
                rows.append([key, summary[key]])
        control = summary.get("control")
        if isinstance(control, dict) and control.get("rewards"):
            rows.append(["control rewards", control["rewards"]])
    if data.log:
        rows.append(["training steps logged", len(data.log)])
    if data.control_log:
        rows.append(["control steps logged", len(data.control_log)])
    for label, s in data.evals.items():
        settings = s.get("settings") or {}
        described = ", ".join(
            f"{k}={v}"
            for k, v in settings.items()
            if k in ("model", "task", "n", "temperature", "max_new_tokens", "split")
        )
        rows.append(
            [
                f"eval: {label}",
                f"{s.get('n_problems')} problems x {s.get('samples_per_problem')} samples"
                + (f" ({described})" if described else ""),
            ]
        )
    body = table(["", ""], rows)
    config = m.get("config")
    if config:
        body += (
            "<details><summary>resolved config</summary><pre>"
            + esc(json.dumps(config, indent=2, default=str))
            + "</pre></details>"
        )
    return Section("overview", "Run", body)


def curves_section(data: RunData) -> Section:
    from rlvr.report.plots import training_curves

    sec = Section("training", "Training curves")
    if not data.log:
        sec.note = "no training log (log.jsonl) in this folder"
        return sec
    url = training_curves(data.log, data.control_log)
    if url is None:
        sec.note = "the training log has none of reward, accuracy, length, entropy, KL or clip fraction"
        return sec
    caption = "faint: per step; solid: moving average"
    if data.control_log:
        caption += "; dashed grey: the random-reward control run"
    sec.body = img(url, "training curves") + f'<p class="caption">{esc(caption)}</p>'
    return sec


def _interval_of(d: Any) -> list[float] | None:
    """A 95% interval from an eval summary or a demo entry (``accuracy_ci95``, ``ci95``, or counts)."""
    if not isinstance(d, dict):
        return None
    for key in ("accuracy_ci95", "ci95"):
        ci = d.get(key)
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            return [float(ci[0]), float(ci[1])]
    n, k = d.get("n_samples", d.get("n")), d.get("n_correct", d.get("correct"))
    if isinstance(n, int) and isinstance(k, int) and n > 0:
        from rlvr.eval.stats import wilson_interval

        return list(wilson_interval(k, n))
    return None


def _accuracy_of(d: Any) -> float | None:
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return float(d)
    if isinstance(d, dict):
        acc = d.get("accuracy")
        if isinstance(acc, dict):
            acc = acc.get("mean")
        if isinstance(acc, (int, float)):
            return float(acc)
    return None


DEMO_LABELS = {"before": "before", "after": "after", "control": "after random rewards (control)"}


def accuracy_entries(data: RunData) -> list[dict[str, Any]]:
    """Bars of the accuracy figure: a demo summary's before/after/control, else each eval summary."""
    s = data.summary or {}
    if "before" in s or "after" in s:
        sources = {}
        for key, label in DEMO_LABELS.items():
            d = s.get(key)
            if key == "control" and isinstance(d, dict) and isinstance(d.get("after"), dict):
                d = d["after"]  # the control's held-out evaluation after training
            sources[label] = d
    else:
        sources = data.evals
    entries = []
    for label, d in sources.items():
        acc = _accuracy_of(d)
        if acc is not None:
            n = d.get("n_samples", d.get("n")) if isinstance(d, dict) else None
            boot = None
            if isinstance(d, dict):
                groups = (d.get("stats") or {}).get("groups") or {}
                boot = next(iter(groups.values()), {}).get("accuracy", {}).get("ci95_bootstrap")
            entries.append({"label": label, "accuracy": acc, "ci95": _interval_of(d), "boot": boot, "n": n})
    return entries


def paired_table(summary: dict[str, Any]) -> str:
    """Paired comparisons of a demo summary (after vs before, control vs before), one row each."""
    blocks = {"after vs before": summary.get("paired")}
    control = summary.get("control")
    if isinstance(control, dict):
        blocks["control vs before"] = control.get("paired")
    flat = {label: dict(flatten(b)) for label, b in blocks.items() if isinstance(b, dict) and b}
    if not flat:
        return ""
    keys = list(dict.fromkeys(k for b in flat.values() for k in b))
    rows = [[label, *[b.get(k) for k in keys]] for label, b in flat.items()]
    return "<h3>Paired comparison on the same problems</h3>" + table(["comparison", *keys], rows)


def accuracy_section(data: RunData) -> Section:
    from rlvr.report.plots import accuracy_bars

    sec = Section("accuracy", "Accuracy with 95% intervals")
    entries = accuracy_entries(data)
    if not entries:
        sec.note = "no accuracy in summary.json"
        return sec
    body = img(accuracy_bars(entries), "accuracy with intervals")
    body += table(
        ["", "accuracy", "95% Wilson interval", "95% two-level bootstrap", "samples"],
        [[e["label"], e["accuracy"], e["ci95"], e["boot"], e["n"]] for e in entries],
    )
    if any(e["boot"] for e in entries):
        body += (
            '<p class="caption">Wilson treats every sample as independent; the two-level bootstrap resamples '
            "problems, then samples within them, and is the honest interval when several samples share a "
            "problem</p>"
        )
    body += paired_table(data.summary or {})
    sec.body = body
    return sec


MULTI_SAMPLE_NOTE = "needs an eval with several samples per problem (rlvr eval --samples N, N > 1)"


def _multi_sample_evals(data: RunData) -> dict:
    """The evals with pass@k for at least two k (several samples per problem)."""
    return {k: s for k, s in data.evals.items() if len(s.get("pass_at_k") or {}) >= 2}


def pass_at_k_section(data: RunData) -> Section:
    from rlvr.report.plots import pass_at_k_curve

    sec = Section("pass-at-k", "pass@k")
    evals = _multi_sample_evals(data)
    if not evals:
        sec.note = MULTI_SAMPLE_NOTE
        return sec
    ks = sorted({int(k) for s in evals.values() for k in s["pass_at_k"]})
    rows = [[label, *[s["pass_at_k"].get(str(k)) for k in ks]] for label, s in evals.items()]
    sec.body = img(pass_at_k_curve(evals), "pass@k") + table(["", *[f"pass@{k}" for k in ks]], rows)
    return sec


def scaling_section(data: RunData) -> Section:
    from rlvr.report.plots import scaling_curves

    sec = Section("scaling", "Accuracy against samples and tokens spent")
    evals = _multi_sample_evals(data)
    if not evals:
        sec.note = MULTI_SAMPLE_NOTE
        return sec
    rows = []
    for label, s in evals.items():
        tokens = s.get("tokens_mean")
        for k in sorted(int(k) for k in s["pass_at_k"]):
            rows.append(
                [
                    label,
                    k,
                    s["pass_at_k"].get(str(k)),
                    (s.get("maj_at_k") or {}).get(str(k)),
                    k * tokens if tokens else None,
                ]
            )
    sec.body = (
        img(scaling_curves(evals), "inference-time scaling")
        + '<p class="caption">solid: pass@k (any of k samples correct, needs a verifier at test time); '
        "dashed: maj@k (the most frequent answer among k samples)</p>"
        + table(["", "k", "pass@k", "maj@k", "tokens per problem"], rows)
    )
    return sec


def _families_of(s: dict[str, Any]) -> dict[str, Any]:
    groups = (s.get("stats") or {}).get("groups") or {}
    fams: dict[str, Any] = {}
    for g in groups.values():
        fams.update(g.get("families") or {})
    return fams


def robustness_section(data: RunData) -> Section:
    from rlvr.report.plots import family_rates

    sec = Section("robustness", "Robustness per family")
    per_eval = {label: _families_of(s) for label, s in data.evals.items()}
    per_eval = {k: v for k, v in per_eval.items() if v}
    if not per_eval:
        sec.note = "no task families in the evaluated samples"
        return sec
    families = list(dict.fromkeys(f for fams in per_eval.values() for f in fams))
    rows, plots, skipped, single = [], [], [], []
    for fam in families:
        for label, fams in per_eval.items():
            f = fams.get(fam)
            if f is None:
                continue
            p = (f.get("chi2") or {}).get("p_value")
            rows.append(
                [
                    fam,
                    label,
                    len(f["variations"]),
                    f.get("min_rate"),
                    f.get("max_rate"),
                    f.get("spread"),
                    p,
                    f.get("all_variants_correct_rate"),
                ]
            )
        n_vars = max(len(fams[fam]["variations"]) for fams in per_eval.values() if fam in fams)
        n_per_var = max(
            v["n"] for fams in per_eval.values() if fam in fams for v in fams[fam]["variations"].values()
        )
        if n_per_var < 2:
            single.append(fam)
            continue
        if n_vars > MAX_VARIATIONS_PLOTTED or len(plots) >= MAX_FAMILIES_PLOTTED:
            skipped.append(fam)
            continue
        if n_vars > 1:
            plots.append(
                img(family_rates(fam, {k: v[fam] for k, v in per_eval.items() if fam in v}), f"family {fam}")
            )
    body = table(
        [
            "family",
            "eval",
            "variations",
            "min rate",
            "max rate",
            "spread",
            "chi-square p",
            "all variants correct",
        ],
        rows,
    )
    body += (
        '<p class="caption">rate per variation with 95% Wilson intervals; the chi-square test asks whether '
        "all variations share one success rate (small p: the model is not robust to the variation)</p>"
    )
    body += "".join(plots)
    for fam in families:
        for label, fams in per_eval.items():
            if fam in fams:
                var_rows = [
                    [v, d["correct"], d["n"], d["rate"], d["ci95"]]
                    for v, d in fams[fam]["variations"].items()
                ]
                body += f"<details><summary>{esc(fam)} ({esc(label)}): rate per variation</summary>"
                body += table(["variation", "correct", "samples", "rate", "95% Wilson interval"], var_rows)
                body += "</details>"
    if single:
        body += (
            '<p class="note">not plotted (one sample per variation, so each rate is 0 or 1; evaluate with '
            f"--samples N for per-variation rates): {esc(', '.join(single))}</p>"
        )
    if skipped:
        body += (
            f'<p class="note">not plotted (more than {MAX_VARIATIONS_PLOTTED} variations or too many '
            f"families): {esc(', '.join(skipped))}</p>"
        )
    sec.body = body
    return sec


def contamination_section(data: RunData) -> Section:
    sec = Section("contamination", "Contamination")
    c = data.contamination
    if not c:
        sec.note = "no contamination.json in this folder (see rlvr contamination)"
        return sec
    body = table(["", ""], flatten(c.get("summary") or {k: v for k, v in c.items() if k != "items"}))
    items = [it for it in c.get("items") or [] if isinstance(it, dict) and it.get("contaminated")]
    if items:
        items.sort(key=lambda it: -float(it.get("share", 0)))
        rows = [
            [it.get("id"), it.get("share"), it.get("n_matched"), (it.get("spans") or [""])[0][:300]]
            for it in items[:MAX_CONTAMINATED_ROWS]
        ]
        body += f"<h3>Most overlapping eval items ({len(items)} contaminated)</h3>"
        body += table(["id", "share of n-grams", "matched n-grams", "first overlapping span"], rows)
    sec.body = body
    return sec


def audit_section(data: RunData) -> Section:
    sec = Section("audits", "Reward-hacking audits")
    a = data.audit
    if not a:
        sec.note = "no audit"
        return sec
    flags = a.get("flags") or []
    if flags:
        body = '<p class="warn">' + esc(f"{len(flags)} flag(s) raised") + "</p>"
        body += table(
            ["audit", "flag", "explanation"],
            [[f.get("audit"), f.get("name"), f.get("explanation")] for f in flags],
        )
    else:
        body = '<p class="ok">no audit flag raised</p>'
    audits = a.get("audits") or {}
    control = (audits.get("control") or {}).get("figures") or {}
    if control:
        cols = ["real_first", "real_last", "real_gain", "control_first", "control_last", "control_gain"]
        body += "<h3>Real run against the random-reward control</h3>"
        body += table(
            [
                "metric",
                "real: first",
                "real: last",
                "real: gain",
                "control: first",
                "control: last",
                "control: gain",
            ],
            [[name, *[f.get(c) for c in cols]] for name, f in control.items()],
        )
    rows = []
    for name, s in audits.items():
        if name == "control" and control:
            continue
        status = "flagged" if s.get("flags") else ("ok" if s.get("figures") else "no data")
        figures = "; ".join(f"{esc(k)} = {fmt(v)}" for k, v in flatten(s.get("figures") or {}))
        rows.append([esc(name), esc(status), figures or esc(s.get("note") or "")])
    body += "<h3>Figures</h3>" + table(["audit", "status", "figures"], rows, raw=True)
    examples = [(name, ex) for name, s in (a.get("audits") or {}).items() for ex in s.get("examples") or []]
    if examples:
        body += "<h3>Examples</h3>"
        for name, ex in examples:
            body += (
                f"<details><summary>{esc(name)}: {esc(ex.get('problem_id'))}</summary><pre>"
                f"{esc(json.dumps(ex, indent=2, ensure_ascii=False, default=str))}</pre></details>"
            )
    sec.body = body
    return sec


SECTIONS = (
    overview_section,
    curves_section,
    accuracy_section,
    pass_at_k_section,
    scaling_section,
    robustness_section,
    contamination_section,
    audit_section,
)

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5em 2em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em;
       margin-top: 1.8em; } h3 { font-size: 1.05em; margin-top: 1.2em; }
nav a { margin-right: 1em; color: #1f77b4; text-decoration: none; } .sub { color: #666; margin-top: 0; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td { font-variant-numeric: tabular-nums; max-width: 40em; overflow-wrap: anywhere; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; font-size: 0.85em; }
.note { color: #777; font-style: italic; } .caption { color: #555; font-size: 0.85em; margin-top: -0.4em; }
.warn { color: #b35900; font-weight: bold; } .ok { color: #2a7a2a; font-weight: bold; }
"""


def render(data: RunData) -> str:
    sections = [f(data) for f in SECTIONS]
    nav = "".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections if s.body)
    parts = []
    for s in sections:
        if s.body:
            parts.append(f'<section id="{s.id}"><h2>{esc(s.title)}</h2>{s.body}</section>')
        else:
            parts.append(f'<section id="{s.id}"><p class="note">{esc(s.title)}: {esc(s.note)}</p></section>')
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>rlvr report: {esc(data.path.name)}</title><style>{CSS}</style></head><body>"
        f'<h1>rlvr report: {esc(data.path.name)}</h1><p class="sub">generated {esc(when)}</p>'
        f"<nav>{nav}</nav>{''.join(parts)}</body></html>\n"
    )


def build_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Render the report of a run or eval folder to ``out`` (default ``path/report.html``)."""
    data = load_run(path)
    out = Path(out) if out is not None else Path(path) / "report.html"
    atomic_write_text(out, render(data))
    return out
