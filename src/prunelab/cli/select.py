"""`select` and `validate`: training-data pruning and its scenario runner."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from prunelab.cli import add_json_flag, emit
from prunelab.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("select", help="keep the training samples that matter (.npz, .csv or Parquet shards)")
    p.add_argument("--input", required=True, metavar="FILE|DIR|GLOB",
                   help=".npz (X, y, timestamps, scores), .csv, or Parquet: a .parquet file, a directory of shards "
                        "or a glob (quote it)")
    p.add_argument("--target", action="append", default=[], metavar="COL",
                   help="CSV/Parquet label/target column (repeat for a multi-column regression target)")
    p.add_argument("--features", action="append", default=[], metavar="COL[,COL]",
                   help="Parquet feature columns (default: every other numeric column)")
    p.add_argument("--engine", choices=("memory", "local", "ray"),
                   help="memory: every row in memory (the only engine for .npz/.csv); local: stream Parquet "
                        "shards in this process, memory bounded by the chunk; ray: the same passes on Ray Data. "
                        "Default for Parquet: local for random/cluster, memory for the others")
    p.add_argument("--ray-address", metavar="ADDR", help="--engine ray: join this cluster (default: start a local Ray)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="--engine ray: concurrent tasks (default: the cluster's CPUs)")
    p.add_argument("--timestamps", metavar="COL", help="CSV column with timestamps (recency)")
    p.add_argument("--scores", metavar="COL", help="CSV column with quality scores (higher is better)")
    p.add_argument("--keep", type=float, metavar="F", help="fraction to keep, in (0, 1]")
    p.add_argument("--keep-count", type=int, metavar="N", help="exact number of samples to keep")
    p.add_argument("--strategy", default="auto", metavar="NAME",
                   help="auto (default: measures every strategy on held-out rows; with --keep it picks the "
                        "strategy, without it the fraction too) or random, cluster, importance, diversity, "
                        "condense, prototype")
    p.add_argument("--tolerance", type=float, metavar="T",
                   help="auto: score drop allowed against the full store (default 0.01 = 1 pp of accuracy)")
    p.add_argument("--folds", type=int, metavar="K", help="auto: held-out folds per repeat (default 3)")
    p.add_argument("--max-seconds", type=float, metavar="S", help="auto: time budget of the search (default 60)")
    p.add_argument("--k", type=int, metavar="K", dest="n_neighbors",
                   help="auto: neighbours of the downstream k-NN it scores (default 5)")
    p.add_argument("--scoring", metavar="NAME",
                   help="auto: how held-out predictions are scored (default accuracy, or R^2 for regression); "
                        "'snapped_accuracy' for targets that are choices from a grid such as n_jobs or "
                        "chunksize (a prediction counts when, moved to the nearest target value, it is right "
                        "in every column), or any scikit-learn scoring name")
    p.add_argument("--holdout", choices=("mixed", "rows", "groups"),  # select.search.HOLDOUTS, kept lazy
                   help="auto's held-out part: 'mixed' (default: half unseen near-duplicate groups, each "
                        "counted once, half new rows of known groups), 'rows' (random rows) or 'groups' "
                        "(unseen groups only)")
    p.add_argument("--min-keep", type=int, default=20, metavar="N", help="never keep fewer (default 20)")
    p.add_argument("--task", default="auto", help="auto, classification, regression or none")
    p.add_argument("--seed", type=int, default=0, help="random_state")
    p.add_argument("--out", metavar="FILE", help="write the kept rows (.npz, or .csv for CSV input; Parquet input: "
                                                  "a .parquet file or a directory of shards, with _shard and _row)")
    p.add_argument("--report", metavar="FILE", help="write the selection report as JSON")
    add_json_flag(p)
    p.set_defaults(handler=cmd_select)

    p = sub.add_parser("validate", help="run the data-pruning scenario matrix and write a report")
    p.add_argument("--suite", default="all",
                   help="histories, sklearn, workloads, mnist or all (default: the four)")
    p.add_argument("--datasets", metavar="A,B",
                   help="only these data sets of the histories / sklearn suites (e.g. wine,zipf-log)")
    p.add_argument("--out", metavar="DIR", default="validate-report", help="report folder")
    p.add_argument("--seeds", type=int, default=5, help="seeds per cell (default 5)")
    p.add_argument("--first-seed", type=int,
                   help="first seed (default: the report seeds, prunelab.validate.REPORT_FIRST_SEED = 2000; "
                        "development used 0-9, and 1000-1004, the earlier report seeds, were looked at when "
                        "auto's scoring of grid targets was added)")
    p.add_argument("--quick", action="store_true", help="small stores, <= 2 seeds, a tiny mnist run")
    p.add_argument("--mnist-seeds", type=int, default=1)
    p.add_argument("--mnist-epochs", type=int, help="epochs of the full-set MLP (default 5, quick 1)")
    p.add_argument("--mnist-train-limit", type=int, help="train the MLP on this many images (default all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the mnist suite")
    p.add_argument("--max-loss-pp", type=float, default=1.0, help="points auto may lose vs the full store (1)")
    p.add_argument("--min-gain-pp", type=float, default=0.5, help="auto over random at keep 30%% (points, 0.5)")
    p.add_argument("--min-auto-saving", type=float, default=0.5,
                   help="predictor bytes auto's own fraction must save on stores with repeats (0.5)")
    p.add_argument("--min-kept-nonredundant", type=float, default=0.9,
                   help="rows auto's own fraction must keep on stores with no repeats (0.9)")
    p.add_argument("--mnist-max-loss-pp", type=float, default=1.0, help="MLP points auto may lose (1)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_validate)


def cmd_select(args: argparse.Namespace) -> None:
    from prunelab.data.tables import load, save
    from prunelab.progress import ProgressBar
    from prunelab.select import select
    from prunelab.select.base import check_strategy

    check_strategy(args.strategy)  # before the file is read
    if args.keep is not None and args.keep_count is not None:
        raise UserError("give --keep or --keep-count, not both")
    from prunelab.data.shards import is_parquet_source

    if is_parquet_source(args.input):
        cmd_select_parquet(args)
        return
    if args.engine in ("local", "ray") or args.features or args.ray_address or args.workers is not None:
        flag = f"--engine {args.engine}" if args.engine in ("local", "ray") else (
            "--features" if args.features else "--ray-address" if args.ray_address else "--workers")
        raise UserError(f"{flag} is for Parquet input (a .parquet file, a directory of shards or a glob); "
                        ".npz and .csv are read into memory (--engine memory)")
    if args.out is not None:
        if not args.out.lower().endswith((".npz", ".csv")):
            raise UserError(f"--out {args.out}: name it .npz (arrays) or .csv (CSV input only)")
        if args.out.lower().endswith(".csv") and not args.input.lower().endswith(".csv"):
            raise UserError("--out .csv needs a .csv input; write .npz for .npz input")
    auto_options = _check_report_and_auto_options(args)
    table = load(args.input, targets=args.target, timestamps=args.timestamps, scores=args.scores)
    # auto's search can take its whole time budget: a bar on stderr, none under --json
    search_bar = {"callback": ProgressBar("auto search")} if args.strategy == "auto" and not args.json else {}
    sel = select(table.X, table.y, keep=args.keep, keep_count=args.keep_count, strategy=args.strategy,
                 min_keep=args.min_keep, timestamps=table.timestamps, scores=table.scores, task=args.task,
                 random_state=args.seed, **auto_options, **search_bar)
    rep = sel.report
    result: dict[str, Any] = {
        "kept_indices": sel.indices.tolist(), "original_count": rep.original_count, "kept_count": rep.kept_count,
        "requested_count": rep.requested_count, "bytes_before": rep.bytes_before, "bytes_after": rep.bytes_after,
        "seconds": rep.seconds, "strategy": rep.strategy, "report": rep.to_dict(),
    }
    if args.out:
        result["out"] = str(save(table, sel.indices, args.out))
    if args.report:
        from prunelab.atomic import write_bytes_atomic

        write_bytes_atomic(args.report, json.dumps(rep.to_dict(), indent=1, default=str).encode())
        result["report_path"] = args.report
    human = rep.summary() + (f"\nwrote {result['out']}" if args.out else "")
    emit(args, result, human)


def cmd_select_parquet(args: argparse.Namespace) -> None:
    """`select` on Parquet shards: the engines of `prunelab.select.engines`."""
    from prunelab.select.engines import select_dataset
    from prunelab.select.streaming import STREAMING_STRATEGIES, PassBar

    engine = args.engine or ("local" if args.strategy in STREAMING_STRATEGIES else "memory")
    if args.ray_address and engine != "ray":
        raise UserError("--ray-address is for --engine ray")
    if args.workers is not None and (engine != "ray" or args.workers < 1):
        raise UserError("--workers N (N >= 1) is for --engine ray")
    auto_options = _check_report_and_auto_options(args)
    features = [c.strip() for f in args.features for c in f.split(",") if c.strip()] or None
    res = select_dataset(args.input, target=args.target, features=features, timestamps=args.timestamps,
                         scores=args.scores, keep=args.keep, keep_count=args.keep_count, strategy=args.strategy,
                         min_keep=args.min_keep, task=args.task, random_state=args.seed, engine=engine, out=args.out,
                         ray_address=args.ray_address, workers=args.workers,
                         progress=None if args.json else PassBar(), **auto_options)
    rep = res.report
    sel = rep.selection
    result: dict[str, Any] = {
        "original_count": sel.original_count, "kept_count": sel.kept_count, "requested_count": sel.requested_count,
        "bytes_before": sel.bytes_before, "bytes_after": sel.bytes_after, "seconds": sel.seconds,
        "strategy": sel.strategy, "engine": rep.engine, "rows_read": rep.rows_read,
        "passes": [p.to_dict() for p in rep.passes], "peak_rss": rep.peak_rss, "wall_seconds": rep.wall_seconds,
        "report": rep.to_dict(),
    }
    if engine == "memory":  # the in-memory contract; streamed runs can keep millions of rows: see --out
        result["kept_indices"] = res.indices.tolist()
    if rep.out:
        result["out"] = rep.out
    if args.report:
        from prunelab.atomic import write_bytes_atomic

        write_bytes_atomic(args.report, json.dumps(rep.to_dict(), indent=1, default=str).encode())
        result["report_path"] = args.report
    emit(args, result, rep.summary() + (f"\nwrote {rep.out}" if rep.out else ""))


def cmd_validate(args: argparse.Namespace) -> None:
    from prunelab.validate import REPORT_FIRST_SEED, Thresholds, validate

    th = Thresholds(max_loss_pp=args.max_loss_pp, min_gain_pp=args.min_gain_pp,
                    min_auto_saving=args.min_auto_saving, min_kept_nonredundant=args.min_kept_nonredundant,
                    mnist_max_loss_pp=args.mnist_max_loss_pp)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    first_seed = REPORT_FIRST_SEED if args.first_seed is None else args.first_seed
    res = validate(suite=args.suite, out=args.out, seeds=args.seeds, quick=args.quick, thresholds=th,
                   mnist_seeds=args.mnist_seeds, mnist_epochs=args.mnist_epochs, threads=args.threads,
                   first_seed=first_seed, datasets=datasets, mnist_train_limit=args.mnist_train_limit,
                   progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    data = res.to_dict()
    q, i = res.counts("quality"), res.counts("invariant")
    human = "\n".join([f"{'PASS' if c.passed else 'FAIL'} {c.kind} {c.name} [{c.scope}] {c.detail}"
                       for c in res.checks]
                      + [f"quality checks: {q['passed']} passed, {q['failed']} failed; invariants: "
                         f"{i['passed']} held, {i['failed']} broken; seeds {res.seeds[0]}-{res.seeds[-1]}; "
                         f"report in {args.out}"])
    emit(args, data, human)
    if res.failed:
        raise SystemExit(1)


def _check_report_and_auto_options(args: argparse.Namespace) -> dict[str, Any]:
    """--report and auto's own options, checked alike for in-memory and Parquet input; returns
    the auto options given (keyword arguments of the search)."""
    if args.report is not None and not args.report.lower().endswith(".json"):
        raise UserError(f"--report {args.report}: the report is JSON; name it .json")
    auto_options = {name: getattr(args, name) for name in ("tolerance", "folds", "max_seconds", "n_neighbors",
                                                            "holdout", "scoring") if getattr(args, name) is not None}
    if auto_options and args.strategy != "auto":
        flags = ", ".join("--" + {"n_neighbors": "k"}.get(k, k).replace("_", "-") for k in auto_options)
        raise UserError(f"{flags}: only for --strategy auto (the measured choice); drop it or "
                        f"--strategy {args.strategy}")
    return auto_options
