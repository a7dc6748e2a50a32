"""The ``velocity`` command line."""

from __future__ import annotations

import argparse
import sys
import time

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
        params = "\n".join(
            f"{p.name}: {p.type} = {p.default_text}" + (f" ({p.range_text})" if p.range_text else "") for p in c.params
        )
        table.add_row(c.name, c.kind, params or "-", c.requires or "-", f"{c.summary}\n[dim]{c.reference}[/dim]")
    console.print(table)


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "strategies":
        _print_components("Aggregation strategies", list_strategies())
    else:
        _print_components("Attacks", list_attacks())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from velocity.demo import run_demo

    start = time.perf_counter()
    console.print(
        f"[bold]VelocityFL demo[/bold]: softmax regression on built-in Gaussian blobs, {args.clients} clients "
        f"(Dirichlet α={args.alpha}), {args.malicious} malicious, {args.rounds} rounds"
    )
    rows = run_demo(
        strategies=args.strategies,
        attacks=args.attacks,
        num_clients=args.clients,
        num_malicious=args.malicious,
        rounds=args.rounds,
        alpha=args.alpha,
        seed=args.seed,
    )
    table = Table(title="Final test accuracy (measured)")
    table.add_column("strategy")
    for a in args.attacks:
        table.add_column(a, justify="right")
    for s in dict.fromkeys(r["strategy"] for r in rows):
        cells = []
        for a in args.attacks:
            r = next(r for r in rows if r["strategy"] == s and r["attack"] == a)
            cells.append(f"{r['final_accuracy']:.3f}")
        table.add_row(s, *cells)
    console.print(table)
    console.print(f"{len(rows)} runs in {time.perf_counter() - start:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from velocity import __version__

    parser = argparse.ArgumentParser(prog="velocity", description="VelocityFL: a federated-learning robustness lab.")
    parser.add_argument("--version", action="version", version=f"velocity {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the registered strategies or attacks with their parameters")
    p.add_argument("what", choices=["strategies", "attacks"])
    p.set_defaults(func=cmd_list)

    from velocity.demo import DEFAULT_ATTACKS, DEFAULT_STRATEGIES

    p = sub.add_parser("demo", help="strategy × attack grid on built-in offline data")
    p.add_argument("--strategies", type=_csv, default=DEFAULT_STRATEGIES, help="comma-separated strategies")
    p.add_argument("--attacks", type=_csv, default=DEFAULT_ATTACKS, help="comma-separated attacks ('none' for clean)")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--malicious", type=int, default=3)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--alpha", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
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
