"""CLI commands of the evaluation stage: `rlvr stats`, `rlvr compare`, `rlvr contamination`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rlvr.eval import run_commands


def register(app: typer.Typer) -> None:
    _register_stats(app)
    _register_compare(app)
    _register_contamination(app)
    run_commands.register(app)  # `rlvr eval` and `rlvr audit`


def _console() -> Any:
    """A rich console; when output is not a terminal, wide enough that tables stay one line per row."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _fail(console: Any, error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {error}")
    return typer.Exit(2)


def _interval(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _register_stats(app: typer.Typer) -> None:
    @app.command()
    def stats(
        file: Annotated[
            Path, typer.Argument(help="Per-sample JSONL: problem_id, correct, optional model, ...")
        ],
        out: Annotated[Path, typer.Option("--out", help="Output folder for stats.json.")],
        target_width: Annotated[
            float, typer.Option("--target-width", help="Planner: wanted width of the 95% accuracy interval.")
        ] = 0.05,
        n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples.")] = 10000,
        seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
        max_families: Annotated[
            int, typer.Option("--max-families", help="Family rows printed (largest spreads first).")
        ] = 30,
    ) -> None:
        """Accuracy with intervals, pass@k, maj@k, per-family variation spreads and a sample-size plan."""
        from rlvr.eval.stats import load_sample_rows, summarise_rows
        from rlvr.io import DataError, atomic_write_json

        console = _console()
        try:
            result = summarise_rows(
                load_sample_rows(file), n_boot=n_boot, seed=seed, target_width=target_width
            )
        except (DataError, ValueError) as e:
            raise _fail(console, e) from None
        atomic_write_json(out / "stats.json", result)
        _print_stats(console, result, file, max_families)
        console.print(f"-> {out / 'stats.json'}")


def _print_stats(console: Any, result: dict[str, Any], file: Path, max_families: int) -> None:
    from rich.table import Table

    groups = result["groups"]
    table = Table(title=f"rlvr stats: {file}")
    for col in ("group", "problems", "samples", "accuracy", "Wilson 95%", "bootstrap 95%"):
        table.add_column(col, justify="left" if col == "group" else "right")
    table.add_column("pass@1", justify="right")
    table.add_column("pass@k (largest k)", justify="right")
    has_maj = any("maj_at_k" in g for g in groups.values())
    if has_maj:
        table.add_column("maj@k", justify="right")
    for name, g in groups.items():
        acc = g["accuracy"]
        row = [
            name,
            str(acc["n_problems"]),
            str(acc["n_samples"]),
            f"{acc['mean']:.3f}",
            _interval(acc["ci95"]),
            _interval(acc["ci95_bootstrap"]),
        ]
        k_max = max(g["pass_at_k"], key=int)
        row += [f"{g['pass_at_k']['1']:.3f}", f"@{k_max} {g['pass_at_k'][k_max]:.3f}"]
        if has_maj:
            maj = g.get("maj_at_k", {})
            row.append(", ".join(f"@{k} {v:.3f}" for k, v in maj.items()) or "-")
        table.add_row(*row)
    console.print(table)
    if "maj_at_k_equivalence" in result["meta"]:
        console.print(f"maj@k clusters answers with: {result['meta']['maj_at_k_equivalence']}")

    fam_rows = [(name, fam, f) for name, g in groups.items() for fam, f in g["families"].items()]
    if fam_rows:
        fam_rows.sort(key=lambda r: -r[2]["spread"])
        table = Table(
            title=f"Variation spread per family ({min(max_families, len(fam_rows))} of {len(fam_rows)})"
        )
        table.add_column("group", overflow="fold", min_width=12)
        table.add_column("family", no_wrap=True, overflow="ellipsis", max_width=40)
        for col in ("variations", "min rate", "max rate", "spread", "chi2 p", "all correct"):
            table.add_column(col, justify="right")
        for name, fam, f in fam_rows[:max_families]:
            allv = f["all_variants_correct_rate"]
            table.add_row(
                name,
                fam,
                str(f["n_variations"]),
                f"{f['min_rate']:.3f}",
                f"{f['max_rate']:.3f}",
                f"{f['spread']:.3f}",
                f"{f['chi2']['p_value']:.2g}",
                "-" if allv is None else f"{allv:.3f}",
            )
        console.print(table)

    table = Table(title="Sample-size plan for the accuracy interval")
    for col in (
        "group",
        "rate",
        "ICC",
        "samples/problem",
        "width now",
        "target",
        "problems needed",
        "at 1 sample",
    ):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in groups.items():
        p = g["planner"]
        table.add_row(
            name,
            f"{p['rate']:.3f}",
            f"{p['icc']:.3f}",
            str(p["samples_per_problem"]),
            f"{p['current_width']:.3f}",
            f"{p['target_width']:.3f}",
            str(p["problems_needed"]),
            str(p["problems_needed_by_samples"]["1"]),
        )
    console.print(table)


def _register_compare(app: typer.Typer) -> None:
    @app.command()
    def compare(
        file_a: Annotated[Path, typer.Argument(help="Per-sample JSONL of run A.")],
        file_b: Annotated[Path, typer.Argument(help="Per-sample JSONL of run B.")],
        out: Annotated[Path | None, typer.Option("--out", help="Write the comparison as JSON here.")] = None,
        model_a: Annotated[
            str | None, typer.Option("--model-a", help="Use only rows of this model in A.")
        ] = None,
        model_b: Annotated[
            str | None, typer.Option("--model-b", help="Use only rows of this model in B.")
        ] = None,
        n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples.")] = 10000,
        seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    ) -> None:
        """Paired comparison by problem: accuracies, difference with bootstrap interval, McNemar p-value."""
        from rich.table import Table

        from rlvr.eval.compare import compare_files
        from rlvr.io import DataError, atomic_write_json

        console = _console()
        try:
            res = compare_files(file_a, file_b, model_a, model_b, n_boot=n_boot, seed=seed)
        except (DataError, ValueError) as e:
            raise _fail(console, e) from None
        if out is not None:
            atomic_write_json(out, res)
        table = Table(title=f"rlvr compare ({res['n_shared_problems']} shared problems)")
        for col in ("run", "file", "model", "problems", "samples", "accuracy (shared)"):
            table.add_column(col, justify="left" if col in ("run", "file", "model") else "right")
        for side in ("a", "b"):
            s = res[side]
            table.add_row(
                side.upper(),
                s["file"],
                s["model"] or "",
                str(s["n_problems"]),
                str(s["n_samples"]),
                f"{s['accuracy']:.3f}",
            )
        console.print(table)
        mc = res["mcnemar"]
        console.print(f"A - B = {res['delta']:+.3f}, paired bootstrap 95% {_interval(res['ci95_bootstrap'])}")
        console.print(
            f"McNemar exact p = {mc['p_value']:.3g} ({mc['basis']}; A only {mc['a_only_correct']}, "
            f"B only {mc['b_only_correct']})"
        )
        if "wilcoxon_p_value" in res:
            console.print(
                f"per-problem accuracy differences: A better on {res['problems_a_better']}, B better on "
                f"{res['problems_b_better']}, tied {res['problems_tied']}; sign test p = "
                f"{res['sign_test_p_value']:.3g}, Wilcoxon signed-rank p = {res['wilcoxon_p_value']:.3g}"
            )
        for side in ("a", "b"):
            missing = res[f"only_in_{side}"]
            if missing:
                shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
                console.print(
                    f"[yellow]{len(missing)} problem(s) only in {side.upper()}, excluded:[/yellow] {shown}"
                )
        if out is not None:
            console.print(f"-> {out}")


def _register_contamination(app: typer.Typer) -> None:
    @app.command()
    def contamination(
        train: Annotated[list[Path], typer.Option("--train", help="Training JSONL/JSON file (repeatable).")],
        eval_file: Annotated[Path, typer.Option("--eval", help="Evaluation JSONL/JSON file.")],
        n: Annotated[int, typer.Option("--n", help="N-gram length in words.")] = 13,
        threshold: Annotated[
            float,
            typer.Option(help="Contaminated when this share of an item's n-grams match (0: any match)."),
        ] = 0.0,
        field: Annotated[
            str | None, typer.Option(help="Text field (default: prompt, question, problem, messages, text).")
        ] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Write per-item results as JSON here.")
        ] = None,
        show: Annotated[int, typer.Option(help="Contaminated items printed.")] = 10,
    ) -> None:
        """N-gram overlap between training and evaluation texts, per eval item, with the shared spans."""
        from rich.table import Table

        from rlvr.eval.contamination import contamination_report
        from rlvr.io import DataError, atomic_write_json

        console = _console()
        try:
            rep = contamination_report(train, eval_file, n=n, threshold=threshold, field=field)
        except (DataError, ValueError) as e:
            raise _fail(console, e) from None
        if out is not None:
            atomic_write_json(out, rep)
        s = rep["summary"]
        rule = "any overlap" if threshold == 0 else f">= {threshold:.0%} of its {n}-grams"
        console.print(
            f"{s['contaminated']} of {s['eval_items']} eval items contaminated ({s['contaminated_share']:.1%}; "
            f"{rule}); {s['too_short']} shorter than {n} words; "
            f"{s['train_unique_ngrams']} distinct {n}-grams in {s['train_texts']} training texts"
        )
        hits = sorted((it for it in rep["items"] if it["contaminated"]), key=lambda it: -it["share"])
        if hits and show > 0:
            table = Table(title="Most contaminated eval items")
            for col in ("id", "line", "matched", "share", "first span"):
                table.add_column(col, justify="right" if col in ("line", "matched", "share") else "left")
            for it in hits[:show]:
                span = it["spans"][0]
                table.add_row(
                    str(it["id"]),
                    str(it["line"]),
                    f"{it['n_matched']}/{it['n_ngrams']}",
                    f"{it['share']:.1%}",
                    span if len(span) <= 80 else span[:77] + "...",
                )
            console.print(table)
        if out is not None:
            console.print(f"-> {out}")
