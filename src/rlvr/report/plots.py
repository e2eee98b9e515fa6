"""Matplotlib figures of a report, rendered with the Agg canvas to base64 PNG data URLs.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global state, no display needed).
Every function returns a ``data:image/png;base64,...`` string ready for an ``<img src>``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from rlvr.eval.audit import metric

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
CONTROL_COLOR = "#7f7f7f"

CURVES = [
    ("reward_mean", "reward (mean)"),
    ("accuracy", "accuracy"),
    ("response_length", "response length (tokens)"),
    ("entropy", "entropy"),
    ("kl", "KL to reference"),
    ("clip_frac", "clip fraction"),
]


def to_data_url(fig: Figure, dpi: int = 100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def series(log: Sequence[dict[str, Any]], name: str) -> tuple[list[float], list[float]]:
    """(steps, values) of a metric over the log records that report it."""
    xs, ys = [], []
    for i, rec in enumerate(log):
        v = metric(rec, name)
        if v is not None:
            xs.append(float(rec.get("step", i + 1)))
            ys.append(v)
    return xs, ys


def smooth(ys: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (the first points average what they have)."""
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= window:
            total -= ys[i - window]
        out.append(total / min(i + 1, window))
    return out


def curves_present(log: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(k, label) for k, label in CURVES if len(series(log, k)[1]) >= 1]


def training_curves(log: Sequence[dict[str, Any]], control_log: Sequence[dict[str, Any]] = ()) -> str | None:
    """A grid of the training metrics, raw (faint) and smoothed, with the control run overlaid."""
    present = curves_present(log)
    if not present:
        return None
    cols = 3 if len(present) > 4 else 2 if len(present) > 1 else 1
    rows = (len(present) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (key, label) in zip(axes, present, strict=False):
        for run, name, color in (
            (log, "run", COLORS[0]),
            (control_log, "random-reward control", CONTROL_COLOR),
        ):
            xs, ys = series(run, key)
            if not ys:
                continue
            window = max(1, len(ys) // 20)
            ax.plot(xs, ys, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(
                xs,
                smooth(ys, window),
                color=color,
                linewidth=1.8,
                label=name,
                linestyle="--" if run is control_log else "-",
                marker="o" if len(ys) <= 20 else None,
                markersize=3,
            )
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(present) :]:
        ax.set_visible(False)
    if control_log:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    return to_data_url(fig)


def accuracy_bars(entries: Sequence[dict[str, Any]]) -> str:
    """Bars of accuracy with 95% interval whiskers; ``entries`` have ``label``, ``accuracy``, ``ci95``."""
    fig = Figure(figsize=(1.6 + 1.3 * len(entries), 3.4))
    ax = fig.subplots()
    xs = range(len(entries))
    accs = [e["accuracy"] for e in entries]
    ax.bar(xs, accs, color=[COLORS[i % len(COLORS)] for i in xs], alpha=0.85, width=0.6)
    for x, e in zip(xs, entries, strict=True):
        if e.get("ci95"):
            lo, hi = e["ci95"]
            ax.errorbar(
                [x],
                [e["accuracy"]],
                yerr=[[e["accuracy"] - lo], [hi - e["accuracy"]]],
                color="black",
                capsize=6,
                linewidth=1.4,
            )
        ax.annotate(
            f"{e['accuracy']:.1%}", (x, e["accuracy"]), textcoords="offset points", xytext=(14, 2), fontsize=8
        )
    ax.set_xticks(list(xs), [e["label"] for e in entries], fontsize=9)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, min(1.0, max([*accs, *(e["ci95"][1] for e in entries if e.get("ci95"))]) * 1.2 + 0.05))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return to_data_url(fig)


def _ks(d: dict[str, float]) -> tuple[list[int], list[float]]:
    items = sorted((int(k), float(v)) for k, v in d.items())
    return [k for k, _ in items], [v for _, v in items]


def pass_at_k_curve(evals: dict[str, dict[str, Any]]) -> str:
    fig = Figure(figsize=(5.2, 3.4))
    ax = fig.subplots()
    for i, (label, s) in enumerate(evals.items()):
        ks, vs = _ks(s["pass_at_k"])
        ax.plot(ks, vs, marker="o", color=COLORS[i % len(COLORS)], label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return to_data_url(fig)


def scaling_curves(evals: dict[str, dict[str, Any]]) -> str:
    """pass@k and maj@k against k, and against the mean tokens spent per problem (k x tokens per sample)."""
    with_tokens = any(s.get("tokens_mean") for s in evals.values())
    fig = Figure(figsize=(10.4 if with_tokens else 5.2, 3.4))
    axes = fig.subplots(1, 2 if with_tokens else 1, squeeze=False).ravel()
    for i, (label, s) in enumerate(evals.items()):
        color = COLORS[i % len(COLORS)]
        for key, style in (("pass_at_k", "-"), ("maj_at_k", "--")):
            if not s.get(key):
                continue
            ks, vs = _ks(s[key])
            name = f"{label} {key.replace('_at_', '@')}"
            axes[0].plot(ks, vs, marker="o", linestyle=style, color=color, label=name)
            if with_tokens and s.get("tokens_mean"):
                axes[1].plot(
                    [k * s["tokens_mean"] for k in ks],
                    vs,
                    marker="o",
                    linestyle=style,
                    color=color,
                    label=name,
                )
    axes[0].set_xlabel("k (samples per problem)")
    if with_tokens:
        axes[1].set_xlabel("completion tokens per problem (k x mean tokens)")

    axes[0].set_xscale("log", base=2)
    for ax in axes:
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return to_data_url(fig)


def family_rates(family: str, per_eval: dict[str, dict[str, Any]]) -> str:
    """Success rate per variation of one family with Wilson intervals, one marker series per eval."""
    variations = list(dict.fromkeys(v for fam in per_eval.values() for v in fam["variations"]))
    fig = Figure(figsize=(max(4.5, 0.45 * len(variations) + 2.0), 3.2))
    ax = fig.subplots()
    width = 0.6 / max(1, len(per_eval))
    for i, (label, fam) in enumerate(per_eval.items()):
        offset = (i - (len(per_eval) - 1) / 2) * width
        xs, ys, lo, hi = [], [], [], []
        for x, var in enumerate(variations):
            v = fam["variations"].get(var)
            if v is None:
                continue
            xs.append(x + offset)
            ys.append(v["rate"])
            lo.append(v["rate"] - v["ci95"][0])
            hi.append(v["ci95"][1] - v["rate"])
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, color=COLORS[i % len(COLORS)], label=label)
    ax.set_xticks(
        range(len(variations)),
        variations,
        rotation=45 if len(variations) > 6 else 0,
        ha="right" if len(variations) > 6 else "center",
        fontsize=8,
    )
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("success rate")
    ax.set_title(family, fontsize=10)
    ax.grid(alpha=0.3)
    if len(per_eval) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return to_data_url(fig)
