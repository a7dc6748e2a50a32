"""The ``velocity`` command line."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from velocity.registry import ComponentInfo, list_attacks, list_strategies

console = Console()


def _csv(text: str) -> tuple[str, ...]:
    """Split on commas outside parentheses, so "Krum(f=2),TrimmedMean(f=1)" gives two items."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    return tuple(i for i in items if i)


def _print_components(title: str, comps: list[ComponentInfo]) -> None:
    table = Table(title=title, show_lines=True)
    for col in ("name", "kind", "parameters", "requires", "summary / reference"):
        table.add_column(col)
    for c in comps:
        params = "\n".join(f"{p.name}: {p.type} = {p.default_text}" + (f" ({p.range_text})" if p.range_text else "") for p in c.params)
        table.add_row(c.name, c.kind, params or "-", c.requires or "-", f"{c.summary}\n[dim]{c.reference}[/dim]")
    console.print(table)


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "strategies":
        _print_components("Aggregation strategies", list_strategies())
    else:
        _print_components("Attacks", list_attacks())
    return 0


GRID_FLAGS = {
    # flag: (RunSpec key, type, help)
    "--dataset": ("dataset", str, "built-in set (blobs, digits, synthetic-mnist), local path or hub name"),
    "--model": ("model_id", str, "logreg, mlp[-h1-h2...], cnn28, cnn32"),
    "--partition": ("partition", str, "iid, shard, dirichlet, pathological (--alphas implies dirichlet)"),
    "--clients": ("num_clients", int, "size of the federation"),
    "--min-clients": ("min_clients", int, "clients trained per round (all when omitted)"),
    "--rounds": ("rounds", int, "federated rounds per run"),
    "--local-epochs": ("local_epochs", int, "local epochs per round"),
    "--lr": ("lr", float, "local learning rate"),
    "--batch-size": ("batch_size", int, "local batch size"),
    "--malicious-fraction": ("malicious_fraction", float, "share of malicious clients in attacked runs (default 0.2)"),
    "--storage": ("storage", str, "fsspec URI for final checkpoints, e.g. local://checkpoints"),
    "--seed": ("seed", int, "seed of the first repetition; repetition r uses seed + r for every configuration"),
}


def _sweep_specs(args: argparse.Namespace) -> list:
    from velocity.sweep import grid, load_experiment
    from velocity.sweep.experiment import SpecError, parse_alpha

    shared = {key: getattr(args, key) for key, _, _ in GRID_FLAGS.values() if getattr(args, key) is not None}
    grid_given = [f for f, (key, _, _) in GRID_FLAGS.items() if getattr(args, key) is not None]
    grid_given += [f"--{k}" for k in ("strategies", "attacks", "alphas", "seeds") if getattr(args, k) is not None]
    if args.experiment:
        if grid_given:
            raise SpecError(f"Expected either an experiment file or grid flags, got both ({', '.join(grid_given)}): put them in the file")
        return load_experiment(args.experiment)
    alphas = tuple(parse_alpha(a) for a in args.alphas) if args.alphas else (None,)
    return grid(
        strategies=args.strategies or ("FedAvg",),
        attacks=args.attacks or ("none",),
        alphas=alphas,
        seeds=args.seeds or 1,
        where="command line",
        **shared,
    )


def _print_comparison(comp: dict, folder) -> None:
    """A compact terminal view of comparison.md (the file has every column)."""
    from velocity.sweep.report import _fmt

    named = any(not e["run"].startswith(e["strategy"] + " | ") for e in comp["ranking"])
    table = Table(title=f"Comparison ({folder}/comparison.md)")
    for col in ["#", *(["run"] if named else []), "strategy", "attack", "α", "final acc", "final loss", "Δ loss vs clean"]:
        table.add_column(col, justify="right" if col in ("#", "final acc", "final loss", "Δ loss vs clean") else "left")
    for e in comp["ranking"]:
        table.add_row(
            str(e["rank"]),
            *([e["run"]] if named else []),
            e["strategy"],
            e["attack"],
            e["alpha"],
            _fmt(e["final_accuracy"], e["final_accuracy_ci95"], 3),
            _fmt(e["final_loss"], e["final_loss_ci95"], 3),
            _fmt(e["loss_change_vs_clean"], digits=3),
        )
    console.print(table)
    console.print(f"[bold]Winner:[/bold] {comp['winner'] or 'none (no run finished)'}")
    if comp["robustness"]:
        console.print(
            "[bold]Most robust under attack[/bold] (mean final-loss change against its clean baseline): "
            + ", ".join(f"{r['strategy']} {r['mean_loss_change']:+.3f}" for r in comp["robustness"])
        )
    t = comp["timing"]
    if t.get("wall_s"):
        console.print(
            f"{t['runs']} runs, {t['parallel']} parallel, total wall {t['wall_s']:.1f} s (serial would be {t['serial_s']:.1f} s — {t['speedup']:.2f}× speedup)"
        )


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from velocity.sweep import Sweep

    specs = _sweep_specs(args)
    sweep = Sweep(specs, out=args.out, parallel=args.parallel)
    console.print(f"[bold]{len(specs)} runs[/bold], {sweep.parallel} in parallel → {sweep.out}")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    )
    tasks = [progress.add_task(s.label, total=s.rounds, state="queued") for s in specs]

    def on_round(row: dict) -> None:
        progress.update(tasks[row["index"]], completed=row["round"], state=f"loss {row['global_loss']:.4f} acc {row['accuracy']:.3f}")

    sweep.on_round(on_round)
    try:
        with progress:
            sweep.start()
            while sweep.running:
                for task, (_, status) in zip(tasks, sweep.run_status(), strict=True):
                    if status != "running" and status != "queued":
                        progress.update(task, state=status if status != "finished" else progress.tasks[task].fields["state"] + " ✓")
                    elif status == "running" and progress.tasks[task].fields["state"] == "queued":
                        progress.update(task, state="running")
                sweep.wait(timeout=0.25)
            sweep.wait()
    except KeyboardInterrupt:
        console.print("[yellow]Cancelling: stopping the workers…[/yellow]")
        sweep.cancel()
        console.print(f"Cancelled. Every finished round is kept in {sweep.out}; run the same sweep into the same --out to resume.")
        return 130
    comparison = sweep.comparison()
    _print_comparison(comparison, sweep.out)
    failed = comparison["failed"]
    if failed:
        console.print(f"[red]{len(failed)} run(s) failed:[/red]")
        for f in failed:
            console.print(f"  {f['run']}: {f['error']}")
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from velocity.sweep.report import load_results, write_comparison

    folder = Path(args.dir)
    results = load_results(folder) if folder.is_dir() else []
    if not results:
        raise ValueError(f"Expected a sweep folder with run folders holding config.json, got {folder}")
    previous = folder / "comparison.json"
    timing = {}
    if previous.exists():
        import json

        timing = json.loads(previous.read_text()).get("timing", {})
    comparison = write_comparison(folder, results, wall_s=timing.get("wall_s"), parallel=timing.get("parallel"))
    _print_comparison(comparison, folder)
    return 1 if comparison["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    from velocity import __version__

    parser = argparse.ArgumentParser(prog="velocity", description="VelocityFL: a federated-learning robustness lab.")
    parser.add_argument("--version", action="version", version=f"velocity {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the registered strategies or attacks with their parameters")
    p.add_argument("what", choices=["strategies", "attacks"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "sweep",
        help="run a strategy × attack × heterogeneity matrix in parallel",
        description="Run an experiment file, or a grid given by flags, in parallel; writes per-run files and a comparison.",
    )
    p.add_argument("experiment", nargs="?", help="a TOML experiment file ([shared], [[runs]], [matrix])")
    p.add_argument("--strategies", type=_csv, help='comma-separated, e.g. FedAvg,FedMedian,"Krum(f=2)"')
    p.add_argument("--attacks", type=_csv, help="comma-separated attacks; 'none' for the clean baseline")
    p.add_argument("--alphas", type=_csv, help="comma-separated Dirichlet α values; inf is iid")
    p.add_argument("--seeds", type=int, help="repetitions per configuration")
    for flag, (key, typ, text) in GRID_FLAGS.items():
        p.add_argument(flag, dest=key, type=typ, help=text)
    p.add_argument("--parallel", type=int, help="runs at once (default: min(cores, runs))")
    p.add_argument("--out", help="output folder (default: out/<timestamp>-sweep)")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="rebuild a sweep's comparison from its files")
    p.add_argument("dir", help="the sweep's output folder")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
