"""The ``velocity`` command line."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from velocity.privacy import ClientDP, ServerDP
from velocity.registry import ComponentInfo, list_attacks, list_mixers, list_strategies

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


_KIND_TITLES = {
    "rule": "Aggregation rules",
    "pre_aggregator": "Pre-aggregators (before the rule: NNM(f=2) + Krum)",
    "server_optimizer": "Server optimisers (after the rule: TrimmedMean + FedAdam)",
    "update_attack": "Update attacks (the core replaces the malicious clients' updates)",
    "data_attack": "Data attacks (the trainer poisons the malicious clients' data)",
    "mixer": "Decentralised mixers (topology = decentralised; any rule works too)",
}


def _print_components(comps: list[ComponentInfo], command: str) -> None:
    """One line per component, grouped by kind, fitted to the terminal (80 columns when piped);
    the details are one command away."""
    name_w = max(len(c.name) for c in comps)
    params_w = 16
    summary_w = max(20, console.width - name_w - params_w - 6)
    for kind, title in _KIND_TITLES.items():
        group = [c for c in comps if c.kind == kind]
        if not group:
            continue
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("name", width=name_w + 1, no_wrap=True)
        table.add_column("parameters", width=params_w, no_wrap=True, overflow="ellipsis")
        table.add_column("summary", width=summary_w, no_wrap=True, overflow="ellipsis")
        for c in group:
            table.add_row(c.name, ", ".join(p.name for p in c.params) or "-", c.summary)
        console.print(table)
    console.print(Text(f"velocity list {command} NAME: one component's parameters, requirement and paper", style="dim"))


def _print_component(c: ComponentInfo) -> None:
    """The full registry entry of one component (user text printed literally, never as markup)."""
    console.print(Text.assemble((c.name, "bold"), f"  ({c.kind.replace('_', ' ')})"))
    console.print(Text(c.summary))
    if c.aliases:
        console.print(Text.assemble(("also named: ", "bold"), ", ".join(c.aliases)))
    if c.requires:
        console.print(Text.assemble(("requires: ", "bold"), c.requires))
    if c.params:
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for col in ("parameter", "type", "default", "range", "meaning"):
            table.add_column(col, overflow="fold")
        for p in c.params:
            table.add_row(p.name, p.type, p.default_text, p.range_text or "-", p.description)
        console.print(table)
    else:
        console.print(Text("no parameters"))
    console.print(Text.assemble(("reference: ", "bold"), c.reference))


def _print_datasets() -> None:
    from velocity.data import describe_builtin_datasets

    table = Table(title="Built-in data sets (offline; options as blobs(classes=4, dim=10))", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "train", "test", "classes", "input", "partition_by"):
        table.add_column(col, justify="right" if col in ("train", "test", "classes") else "left", no_wrap=True)
    described = describe_builtin_datasets()
    for d in described:
        shape = "×".join(map(str, d["shape"]))
        table.add_row(Text(d["name"]), str(d["train"]), str(d["test"]), str(d["classes"]), shape, Text(d["partition_by"] or "—"))
    console.print(table)
    for d in described:
        console.print(Text(f"  {d['name']}: {d['about']}"), soft_wrap=True)
    console.print(
        "Also: a local parquet / csv / arrow / json file, an image folder, a save_to_disk folder, or a Hugging Face hub name (online)."
    )


def cmd_list(args: argparse.Namespace) -> int:
    from velocity import _core

    if args.what == "datasets":
        if args.name is not None:
            raise ValueError(f"Expected no name after 'list datasets', got {args.name!r}")
        _print_datasets()
        return 0
    comps = [*list_strategies(), *list_mixers()] if args.what == "strategies" else list_attacks()
    if args.name is None:
        _print_components(comps, args.what)
        return 0
    key = _core.name_key(args.name)
    found = [c for c in comps if key in {_core.name_key(n) for n in (c.name, *c.aliases)}]
    if not found:
        raise ValueError(f"Expected one of the {args.what}: {', '.join(c.name for c in comps)}; got {args.name!r}")
    _print_component(found[0])
    return 0


#: RunSpec keys that are grid axes on the command line (comma-separated values, a run each),
#: with their flags: the plural first, the key's own name as an alias.
AXES = {
    "strategy": ("--strategies", "--strategy"),
    "attacks": ("--attacks",),
    "alpha": ("--alphas", "--alpha"),
}
#: Short flags kept beside the keys' own.
SHORT_FLAGS = {"model_id": ("--model",), "num_clients": ("--clients",)}


def _key_values(text: str) -> dict[str, Any]:
    """A table as flag text: "noise_multiplier=1.1,max_grad_norm=1" (numbers read as numbers);
    the table's own model checks the keys and values."""
    table: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"Expected key=value pairs joined by ',' (noise_multiplier=1.1,max_grad_norm=1), got {text!r}")
        try:
            table[key.strip()] = float(value)
        except ValueError:
            table[key.strip()] = value.strip()
    return table


#: How a flag's text becomes a RunSpec value of each type, and how help shows it.
_VALUE_FLAGS: dict[Any, tuple[Callable[[str], Any], str]] = {
    int: (int, "N"),
    float: (float, "X"),
    str: (str, "TEXT"),
    ClientDP: (_key_values, "KEY=X,..."),
    ServerDP: (_key_values, "KEY=X,..."),
}


def spec_flag(key: str) -> str:
    """The command-line flag of a RunSpec key: the same name, with dashes."""
    return "--" + key.replace("_", "-")


def _add_spec_flags(p: argparse.ArgumentParser) -> None:
    """One flag per RunSpec key (types, choices and help from RunSpec itself), so the command
    line and TOML files keep one vocabulary."""
    from velocity.sweep.spec import RunSpec

    for key, field in RunSpec.model_fields.items():
        if key in AXES:
            continue
        annotation = field.annotation
        if get_origin(annotation) in (Union, UnionType):  # X | None: None means "not given"
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        text = field.description or key
        if "default" not in text:
            text += f" (default: {'none' if field.default is None else field.default})"
        flags = (spec_flag(key), *SHORT_FLAGS.get(key, ()))
        if annotation is bool:
            p.add_argument(*flags, dest=key, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif get_origin(annotation) is Literal:
            p.add_argument(*flags, dest=key, choices=get_args(annotation), default=None, help=text)
        else:  # a key of another type needs a parser here: KeyError when the CLI is built
            parse, metavar = _VALUE_FLAGS[annotation]
            p.add_argument(*flags, dest=key, type=parse, default=None, metavar=metavar, help=text)


def _sweep_specs(args: argparse.Namespace) -> list:
    from velocity.sweep import grid, load_experiment
    from velocity.sweep.experiment import SpecError, parse_alpha
    from velocity.sweep.spec import RunSpec

    shared = {key: getattr(args, key) for key in RunSpec.model_fields if key not in AXES and getattr(args, key) is not None}
    grid_given = [spec_flag(key) for key in shared]
    grid_given += [f"--{k}" for k in ("strategies", "attacks", "alphas", "seeds") if getattr(args, k) is not None]
    if args.experiment:
        if grid_given and not Path(args.experiment).exists():  # `--strategies FedAvg FedMedian`: the second word lands here
            raise SpecError(
                f"Expected comma-separated values after a grid flag (--strategies FedAvg,FedMedian), got '{args.experiment}' "
                "as a separate word, read as an experiment file that does not exist"
            )
        if grid_given:
            raise SpecError(f"Expected either an experiment file or grid flags, got both ({', '.join(grid_given)}): put them in the file")
        return load_experiment(args.experiment)
    alphas = tuple(parse_alpha(a) for a in args.alphas) if args.alphas else (None,)
    return grid(
        strategies=args.strategies or ("FedAvg",),
        attacks=args.attacks or ("none",),
        alphas=alphas,
        seeds=1 if args.seeds is None else args.seeds,
        where="command line",
        **shared,
    )


def _print_comparison(comp: dict, folder) -> None:
    """A compact terminal view of comparison.md (the file has every column): the verdict and its
    notices first, then every run. Names are printed literally (``Text``), never as markup."""
    from rich.text import Text

    from velocity.sweep.report import EPSILONS, _fmt, epsilon_columns, timing_line
    from velocity.sweep.verdict import versus_best

    verdict = comp["verdict"]
    if verdict["table"]:
        vt = Table(title="Verdict: accuracy under the sweep's attacks (worst case over attacks, per α)")
        for col in ["α", "#", "strategy", "clean", "worst case", "worst attack", "mean attacked", "vs best"]:
            vt.add_column(col, justify="right" if col in ("#", "clean", "worst case", "mean attacked") else "left")
        for e in verdict["table"]:
            vt.add_row(
                Text(e["alpha"]),
                str(e["rank"]),
                Text(e["strategy"]),
                _fmt(e["clean_accuracy"], e["clean_accuracy_ci95"], 3),
                _fmt(e["worst_case_accuracy"], e["worst_case_accuracy_ci95"], 3),
                Text(e["worst_attack"] or "n/a"),
                _fmt(e["mean_attacked_accuracy"], e["mean_attacked_accuracy_ci95"], 3),
                versus_best(e),
            )
        console.print(vt)
        if verdict["single_seed"]:
            console.print("One seed per configuration: no intervals or tests; close values may be noise (use --seeds 3).")
    for notice in verdict["notices"]:
        console.print(Text("Notice: " + notice))
    named = any(not e["run"].startswith(e["strategy"] + " | ") for e in comp["ranking"])
    written = (folder / "comparison.md").exists()  # (not on a full disk)
    table = Table(title=Text(f"Every run ({folder}/comparison.md)" if written else "Every run"))
    asr = any(not math.isnan(e.get("final_attack_success", math.nan)) for e in comp["ranking"])  # a targeted attack ran
    private = epsilon_columns(comp["ranking"])  # when a run had DP
    numbers = ("#", "final acc", "attack success", "final loss", "Δ loss vs clean", *(EPSILONS[k] for k in private))
    for col in [
        "#",
        *(["run"] if named else []),
        "strategy",
        "attack",
        "α",
        "final acc",
        *(["attack success"] if asr else []),
        *(EPSILONS[k] for k in private),
        "final loss",
        "Δ loss vs clean",
    ]:
        table.add_column(col, justify="right" if col in numbers else "left")
    for e in comp["ranking"]:
        table.add_row(
            str(e["rank"]),
            *([Text(e["run"])] if named else []),
            Text(e["strategy"]),
            Text(e["attack"]),
            Text(e["alpha"]),
            _fmt(e["final_accuracy"], e["final_accuracy_ci95"], 3),
            *([_fmt(e.get("final_attack_success"), e.get("final_attack_success_ci95"), 3)] if asr else []),
            *(_fmt(e.get(k), e.get(f"{k}_ci95"), 2) for k in private),
            _fmt(e["final_loss"], e["final_loss_ci95"], 3),
            _fmt(e["loss_change_vs_clean"], digits=3),
        )
    console.print(table)
    console.print(Text.assemble(("Best run: ", "bold"), comp["winner"] or "none (no run finished with a finite loss and accuracy)"))
    if comp["robustness"]:
        console.print(
            Text(
                "Smallest loss change under attack (mean final-loss change against the clean twin; a rule that learns little "
                "loses little: read with the verdict): "
                + ", ".join(f"{r['strategy']} {r['mean_loss_change']:+.3f}" for r in comp["robustness"])
            )
        )
    t = comp["timing"]
    if t.get("wall_s"):
        console.print(Text(timing_line(t)))
    for text in comp.get("file_problems", []):
        console.print(Text("File problem: " + text, style="yellow"), soft_wrap=True)


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from velocity.sweep import Sweep

    specs = _sweep_specs(args)
    sweep = Sweep(specs, out=args.out, parallel=args.parallel)
    console.print(Text.assemble((f"{len(specs)} runs", "bold"), f", {sweep.parallel} in parallel → {sweep.out}"))
    from velocity.sweep.manifest import available_cpus

    cores = available_cpus()
    if sweep.parallel > cores:
        console.print(Text(f"Note: {sweep.parallel} workers on {cores} cores take turns; a run's time includes the wait.", style="yellow"))
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    )
    # run names are user text: escaped, so "[...]" is printed, never read as markup
    tasks = [progress.add_task(escape(s.label), total=s.rounds, state="queued") for s in specs]
    ended: set[int] = set()  # runs whose end is shown (one ✓ each)

    def on_round(row: dict) -> None:
        if row["index"] not in ended:
            progress.update(tasks[row["index"]], completed=row["round"], state=f"loss {row['global_loss']:.4f} acc {row['accuracy']:.3f}")

    def show_statuses() -> None:
        for i, (task, (_, status)) in enumerate(zip(tasks, sweep.run_status(), strict=True)):
            if status in ("running", "queued"):
                if status == "running" and progress.tasks[task].fields["state"] == "queued":
                    progress.update(task, state="running")
            elif i not in ended:
                ended.add(i)
                progress.update(task, state=progress.tasks[task].fields["state"] + " ✓" if status == "finished" else status)

    sweep.on_round(on_round)
    try:
        with progress:
            sweep.start()
            while sweep.running:
                show_statuses()
                sweep.wait(timeout=0.25)
            sweep.wait()
            show_statuses()  # the runs that ended in the last interval
    except KeyboardInterrupt:
        console.print("[yellow]Cancelling: stopping the workers…[/yellow]")
        sweep.cancel()
        console.print(Text(f"Cancelled. Every finished round is kept in {sweep.out}; run the same sweep into the same --out to resume."))
        return 130
    comparison = sweep.comparison()
    _print_comparison(comparison, sweep.out)
    failed = comparison["failed"]
    if failed:
        console.print(Text(f"{len(failed)} run(s) failed:", style="red"))
        for f in failed:
            console.print(Text(f"  {f['run']}: {f['error']}"), soft_wrap=True)  # user text, never markup
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from velocity.sweep.files import DamagedFile, read_json
    from velocity.sweep.report import load_results, write_comparison
    from velocity.sweep.sweep import check_out_folder

    folder = Path(args.dir)
    check_out_folder(folder)  # the comparison is written there
    damaged: list[str] = []
    results = load_results(folder, damaged) if folder.is_dir() else []
    if not results:
        raise ValueError(f"Expected a sweep folder with run folders holding config.json, got {folder}")
    previous = folder / "comparison.json"
    timing: dict = {}
    if previous.exists():
        try:
            old = read_json(previous)
            timing = old.get("timing", {}) if isinstance(old, dict) and isinstance(old.get("timing"), dict) else {}
        except DamagedFile as e:  # rebuilt anyway, without the earlier timing
            damaged.append(str(e))
    comparison = write_comparison(
        folder,
        results,
        wall_s=timing.get("wall_s"),
        parallel=timing.get("parallel"),
        resumed=timing.get("resumed", []),
        file_problems=damaged,
    )
    _print_comparison(comparison, folder)
    return 1 if comparison["failed"] else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    import json

    from velocity.results import leaderboard
    from velocity.specs import to_json_value

    board = leaderboard(
        args.paths or ["."],
        metric=args.metric,
        dataset=args.dataset,
        attack=args.attack,
        alpha=args.alpha,
        target=args.target,
        min_runs=args.min_runs,
    )
    if args.json:
        print(json.dumps(to_json_value(board.to_json(), nan_as_null=True), indent=2, allow_nan=False))
        return 0
    if board.entries:
        console.print(board.table())
    else:
        console.print("No finished run matches these filters.")
    for note in board.notes:
        console.print(Text("Note: " + note), soft_wrap=True)
    for skipped in board.skipped:
        console.print(Text("Skipped: " + skipped), soft_wrap=True)
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from velocity.results.archive import archive

    out = archive(args.dir, args.output)
    console.print(Text(f"Packed {args.dir} into {out} (RO-Crate 1.1; every file with its SHA-256)"), soft_wrap=True)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from datetime import datetime

    from velocity.results.archive import reproduce

    out = Path(args.out) if args.out else Path("out") / f"{datetime.now():%Y%m%d-%H%M%S}-reproduced"
    result = reproduce(args.archive, out=out, check=args.check, tolerance=args.tolerance, parallel=args.parallel)
    console.print(Text(f"Ran the archive's {len(result.checks) or 'runs'} run(s) again into {result.out}"), soft_wrap=True)
    if not args.check:
        return 0
    for c in result.checks:
        if c.matches:
            console.print(Text.assemble(("match     ", "green"), c.run), soft_wrap=True)
        else:
            diffs = "; ".join(f"{k}: archived {a!r}, now {b!r}" for k, (a, b) in c.differences.items())
            console.print(Text.assemble(("MISMATCH  ", "red"), f"{c.run}: {diffs}"), soft_wrap=True)
    bad = len(result.mismatched)
    console.print(Text(f"{len(result.checks) - bad} of {len(result.checks)} run(s) reproduced within {args.tolerance:g}"))
    return 1 if bad else 0


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ValueError("Expected the mcp package for 'velocity mcp', got none installed: pip install 'velocity-fl[agents]'") from None
    from velocity.mcp_server import serve

    serve(args.root, budget=args.budget)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from velocity import __version__

    parser = argparse.ArgumentParser(prog="velocity", description="VelocityFL: a federated-learning robustness lab.")
    parser.add_argument("--version", action="version", version=f"velocity {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "list", help="list the registered strategies or attacks (name one for its parameters and paper), or the built-in data sets"
    )
    p.add_argument("what", choices=["strategies", "attacks", "datasets"])
    p.add_argument("name", nargs="?", help="a component's name (case, _ and - ignored) for its full entry")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "sweep",
        help="run a strategy × attack × heterogeneity matrix in parallel",
        description="Run an experiment file, or a grid given by flags, in parallel; writes per-run files and a comparison.",
    )
    p.add_argument("experiment", nargs="?", help="a TOML experiment file ([shared], [[runs]], [matrix])")
    p.add_argument(*AXES["strategy"], dest="strategies", type=_csv, help='comma-separated, e.g. FedAvg,FedMedian,"Krum(f=2)"')
    p.add_argument(*AXES["attacks"], dest="attacks", type=_csv, help="comma-separated attacks; 'none' for the clean baseline")
    p.add_argument(*AXES["alpha"], dest="alphas", type=_csv, help="comma-separated Dirichlet α values; inf is iid")
    p.add_argument("--seeds", type=int, help="repetitions per configuration; repetition r uses seed + r")
    _add_spec_flags(p)
    p.add_argument("--parallel", type=int, help="runs at once (default: min(cores, runs))")
    p.add_argument("--out", help="output folder (default: out/<timestamp>-sweep)")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="rebuild a sweep's comparison from its files")
    p.add_argument("dir", help="the sweep's output folder")
    p.set_defaults(func=cmd_report)

    from velocity.results.leaderboard import METRICS

    p = sub.add_parser(
        "leaderboard",
        help="rank configurations across sweeps by one metric (mean ± 95%% interval over seeds)",
        description="Rank the configurations of every sweep under PATHS (each a sweep folder or a folder of sweeps).",
    )
    p.add_argument("paths", nargs="*", help="sweep folders or folders holding sweeps (default: the current folder)")
    p.add_argument("--metric", choices=METRICS, default="accuracy")
    p.add_argument("--dataset", help="comma-separated data set names")
    p.add_argument("--attack", help="comma-separated attacks ('alie' matches every ALIE run; 'none' the clean runs)")
    p.add_argument("--alpha", help="0.5, <=0.5, 0.1,0.5, inf, or a partition name such as iid")
    p.add_argument("--target", type=float, default=0.9, help="the accuracy rounds-to-target waits for (default 0.9)")
    p.add_argument("--min-runs", type=int, default=1, help="hide configurations repeated fewer times")
    p.add_argument("--json", action="store_true", help="print the board as JSON")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("archive", help="pack a sweep as an RO-Crate zip (files, specs, versions, hashes)")
    p.add_argument("dir", help="the sweep's output folder")
    p.add_argument("-o", "--output", required=True, help="the zip to write, e.g. sweep.zip")
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser("reproduce", help="run an archived sweep again; with --check, compare every run's final metrics")
    p.add_argument("archive", help="a zip written by 'velocity archive'")
    p.add_argument("--check", action="store_true", help="compare each run's final metrics with the archived ones (exit 1 on a mismatch)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest absolute difference that still matches (default 1e-6)")
    p.add_argument("--out", help="where to run it again (default: out/<timestamp>-reproduced)")
    p.add_argument("--parallel", type=int, help="runs at once (default: min(cores, runs))")
    p.set_defaults(func=cmd_reproduce)

    from velocity.mcp_server import DEFAULT_BUDGET

    p = sub.add_parser("mcp", help="serve agent tools over the Model Context Protocol (stdio)")
    p.add_argument("--root", default=".", help="the folder every path of a tool must stay in (default: the current folder)")
    p.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        help=f"the largest sweep an agent may start, in runs × rounds (default {DEFAULT_BUDGET})",
    )
    p.set_defaults(func=cmd_mcp)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:
        # one line, as written: the message may quote user text, which is never markup
        console.print(Text.assemble(("error: ", "red"), str(e)), soft_wrap=True)
        return 2
    except OSError as e:  # the file system refused (no space left, a folder gone): say which file
        what = f"{e.strerror}: '{e.filename}'" if e.filename else str(e)
        console.print(Text.assemble(("error: ", "red"), what), soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
