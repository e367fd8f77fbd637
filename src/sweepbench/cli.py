"""The `sweepbench` command. Subcommands import what they need (torch only where needed).

Exit codes: 0 when the run trained (completed, converged, target reached or diverged),
2 for bad input (one line on stderr naming the value and what is allowed), 1 for a crash.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from sweepbench import SweepbenchError, __version__
from sweepbench.data.registry import PREPARED
from sweepbench.provenance import usable_cores
from sweepbench.spec import OPTIONS, help_text, parse_value, resolve
from sweepbench.workloads import WORKLOADS

# The Snakemake workflow that ships in the package (package data, not a module): `sweepbench run`
# runs it in the current folder, and a clone's root Snakefile includes it.
WORKFLOW_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workflow")
SNAKEFILE = os.path.join(WORKFLOW_DIR, "Snakefile")

RUN_HELP = """Run the sweepbench workflow (Snakemake on the Snakefile in the package) in the current folder:
its studies come from config.yaml there (or --configfile FILE), and its results, report and
Snakemake's state (.snakemake/) are written there. Every argument goes to Snakemake unchanged
(`snakemake --help` lists them), e.g.

  sweepbench run --cores 2                 run the studies of ./config.yaml
  sweepbench run -n                        list the jobs that would run
  sweepbench run --config smoke=true       the same grid on tiny generated data
  sweepbench run --profile PROFILE         e.g. a SLURM profile
  sweepbench run --configfile other.yaml   another config

The exit code is Snakemake's."""

TRAIN_HELP = """Run one training run and write its record (metrics.csv, steps.csv, run.json) to --out.

Every option of a run can be set with --set KEY=VALUE (repeatable); defaults:
""" + help_text() + """

Workload defaults override these (see `sweepbench workloads`); --set overrides both."""


def _train_parser(sub):
    p = sub.add_parser("train", help="run one training run", description=TRAIN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", required=True,
                   help="a built-in workload (sweepbench workloads lists them), or your own: file.py:function or "
                        "module:function")
    p.add_argument("--optimizer", help=f"one of {OPTIONS['optimizer'].allowed()} (default sgd)")
    p.add_argument("--lr", help="learning rate > 0 (default: the workload's)")
    p.add_argument("--batch-size", help="integer >= 1 or 'full' (default: the workload's)")
    p.add_argument("--epochs", help="maximum epochs >= 1 (default: the workload's)")
    p.add_argument("--seed", help="seed for python, numpy and torch (default 0)")
    p.add_argument("--out", required=True, help="run folder to write (replaced atomically when complete)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other option of the run (repeatable), e.g. --set schedule=cosine")
    p.add_argument("--synthetic", action="store_true",
                   help="random tensors of the dataset's shape and count instead of real data (recorded)")
    p.add_argument("--device", help="auto | cpu | cuda (default auto)")
    p.add_argument("--threads", help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def spec_from_args(args) -> dict:
    """The user's part of a run spec from parsed `train` arguments (not yet resolved)."""
    user = {"workload": args.workload}
    for key, text in (("optimizer", args.optimizer), ("lr", args.lr), ("batch_size", args.batch_size),
                      ("epochs", args.epochs), ("seed", args.seed), ("device", args.device),
                      ("threads", args.threads)):
        if text is not None:
            user[key] = parse_value(key, text)
    if args.synthetic:
        user["synthetic"] = True
    for item in args.set:
        if "=" not in item:
            raise SweepbenchError(f"bad --set {item!r}; allowed: KEY=VALUE with KEY one of the run options")
        key, _, text = item.partition("=")
        user[key.strip()] = parse_value(key.strip(), text.strip())
    return user


def cmd_train(args) -> int:
    spec = resolve(spec_from_args(args))
    from sweepbench.train import engine  # torch import happens here, after the cheap checks

    result = engine.train(spec, args.out, quiet=args.quiet)
    tt = result["to_target"]
    reached = f"{tt['metric']} {tt['target']} at step {tt['step']}" if tt["reached"] else "target not reached"
    print(f"{result['status']}: {result['stop_reason']}; {reached}; "
          f"{result['throughput']['samples_per_s'] or 0:.0f} samples/s -> {args.out}")
    return 0


def cmd_prepare(args) -> int:
    from sweepbench.data.datasets import tensor_file
    from sweepbench.data.prepare import prepare

    if args.out is not None and not args.out.strip():
        raise SweepbenchError("bad --out '': empty; allowed: a tensor file path, or no --out for "
                              f"{tensor_file(args.dataset, args.data_dir)}")
    out = args.out or tensor_file(args.dataset, args.data_dir)
    prepare(args.dataset, args.raw_dir, out, download=args.download, tiny=args.tiny)
    print(f"prepared {args.dataset} -> {out} (sources and sha256 in {out}.sources.json)")
    return 0


def cmd_workloads(args) -> int:
    for w in WORKLOADS.values():
        print(f"{w.name:16s} {w.description}\n{'':16s} defaults: {json.dumps(w.defaults)}")
    print("\nYour own: file.py:function or module:function returning a sweepbench.Workload "
          "(README, 'Benchmark your own model'; `sweepbench init` writes an example).")
    return 0


def cmd_init(args) -> int:
    from sweepbench.plan.scaffold import init

    written = init(args.folder)
    print(f"wrote {' and '.join(written)}; run it: {'cd ' + args.folder + ' && ' if args.folder != '.' else ''}"
          "sweepbench run --cores 2")
    return 0


def cmd_probe(args) -> int:
    from sweepbench.train.probe import probe_file

    found = probe_file(args.runs_file, args.out)
    print(f"probe: {found['workload']}: {found['model']} on {found['dataset']} ({found['n_train']} training samples "
          f"of shape {tuple(found['sample_shape'])}, {found['n_classes']} classes): ok")
    return 0


def cmd_plan(args) -> int:
    from sweepbench.plan.planner import load_config, plan, plan_json

    the_plan = plan(load_config(args.config))
    if args.json:  # what the workflow writes to plan.json (each run spec once, in its cell), so read_plan reads it
        print(plan_json(the_plan, args.config))
        return 0
    job_runs = [r for job in the_plan["jobs"].values() for r in job["runs"]]
    for name, study in the_plan["studies"].items():
        stacks = {r["stack"] for r in job_runs if (r["stack"] or "").startswith(name + "/")}
        print(f"{name}: {study['workload']}, {len(study['cells'])} cells x {len(study['seeds'])} seeds "
              f"= {len(study['runs'])} runs; axes: {', '.join(study['axes']) or '-'}; "
              f"{len(stacks) or 'no'} stack{'s' * (len(stacks) != 1)}")
    print(f"total: {len(the_plan['jobs'])} jobs, {len(the_plan['cells'])} cells, "
          f"{sum(len(c['runs']) for c in the_plan['cells'].values())} runs")
    return 0


def cmd_status(args) -> int:
    from sweepbench.status import format_status, status

    result = status(args.results_dir, args.workdir)
    print(json.dumps(result, indent=1) if args.json else format_status(result))
    return 0


def cmd_train_pack(args) -> int:
    """Train a job's runs in this process (sweepbench.train.job): runs with a complete record of the
    same spec and code are kept, the manifest is written when every run is done."""
    from sweepbench.train.job import PackOptions, read_runs, train_pack

    opts = PackOptions(out=args.out, threads=args.threads, gpu_slots=args.gpu_slots, exclusive=args.exclusive,
                       quiet=args.quiet)
    if args.slurm_tasks:  # one of the job's SLURM tasks (srun): each run's rank SLURM_PROCID
        from sweepbench.train import distributed

        opts.task = distributed.slurm_task(args.slurm_tasks, args.out)
    runs = read_runs(args.runs_file)
    if args.cycle_from_plan:  # batch_cycle_from: the cycle comes from another study's records
        from sweepbench.plan import batch_cycle
        from sweepbench.plan.planner import read_plan

        runs_root = os.path.join(os.path.dirname(args.cycle_from_plan), "runs")
        runs = batch_cycle.apply(read_plan(args.cycle_from_plan), args.job, runs_root)
    train_pack(runs, opts, manifest=args.manifest)
    return 0


def cmd_aggregate(args) -> int:
    from sweepbench.aggregate.tables import aggregate

    counts = aggregate(args.plan, args.runs_dir, args.out, partial=args.partial)
    missing = (f"; {counts['missing']} planned runs have no record yet (cells.csv n_missing)"
               if counts["missing"] else "")
    print(f"aggregated {counts['runs']} runs into {args.out}/{missing}")
    return 0


def cmd_report(args) -> int:
    from sweepbench.report.document import render

    if args.workers < 1:
        raise SweepbenchError(f"bad --workers {args.workers}; allowed: an integer >= 1")
    out = render(args.plan, args.tables, args.runs_dir, args.out, check_dir=args.check_dir, pdf=not args.no_pdf,
                 figures_dir=args.figures_dir, workers=args.workers)
    print("wrote " + " and ".join(out.values()))
    return 0


def cmd_export(args) -> int:
    from sweepbench.report.tensorboard import export

    counts = export(args.tables, args.runs_dir, args.out)
    print(f"wrote {counts['runs']} runs ({counts['scalars']:,} values) to {args.out}/; "
          f"view them with: tensorboard --logdir {args.out}")
    return 0


def cmd_baseline(args) -> int:
    from sweepbench.check.compare import save_baseline

    out = save_baseline(args.name, args.tables, args.root)
    print(f"saved baseline {args.name!r} to {out}/ (commit it to compare later runs with it)")
    return 0


def cmd_check(args) -> int:
    """Exit 0 pass, 1 regression, 2 usage error or corrupt input; never 1 for anything but a
    regression (an unexpected error is reported in one line and exits 2)."""
    from sweepbench.check.compare import run_check, write_not_run
    from sweepbench.plan.planner import read_plan

    config_check = None
    path = _history_path(args)
    if path and os.path.lexists(path) and not args.no_fail:  # a bad history refused before any output is written
        from sweepbench.check import history

        history.read_history(path)
    try:
        if args.plan and os.path.exists(args.plan):
            config_check = read_plan(args.plan)["config"].get("check")
        summary = run_check(args.baseline, args.tables, args.out, config_check, args.root)
    except SweepbenchError as err:
        if not args.no_fail:
            raise
        summary = write_not_run(args.out, args.baseline, str(err))
    except Exception as err:  # a bug or an input no validation foresaw: never exit 1 (= a regression)
        import traceback

        traceback.print_exc()
        raise SweepbenchError(f"could not run the check ({type(err).__name__}: {err}); exit 2, not a verdict") from None
    if summary.get("environment"):
        print(summary["environment"])
    print(summary["line"])
    print(f"details: {os.path.join(args.out, 'check.csv')}")
    _add_to_history(args, summary)
    return 0 if summary["passed"] or args.no_fail else 1


def _add_to_history(args, summary: dict) -> None:
    """After a check that ran: its entry in the history file. A history that cannot be read is
    exit 2, or with --no-fail a warning line (the verdict is already in the check's files)."""
    from sweepbench.check import history

    path = _history_path(args)
    if not path or summary["passed"] is None:
        return
    try:
        entry = history.record_check(path, args.out, args.baseline, args.tables)
    except SweepbenchError as err:
        if not args.no_fail:
            raise
        print(f"sweepbench check: warning: not added to the history: {err}", file=sys.stderr)
        return
    print(f"history: entry {entry} of {path}")


def _history_path(args) -> str | None:
    """check's history file: --history, or history.csv beside the --out folder; None for --history ''."""
    if args.history is None:
        from sweepbench.check import history

        return history.default_path(args.out)
    return args.history or None


def _option_values(args: list[str], names: tuple[str, ...]) -> list[str] | None:
    """The values given to a Snakemake option (any of `names`, long forms also as --name=VALUE, a
    short one also as -dVALUE) among `args`, up to the next option; None when it is not given."""
    found = None
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if arg in names or (eq and name in names and name.startswith("--")):
            found = [value] if eq else []
            if not eq:
                for more in args[i + 1:]:
                    if more.startswith("-"):
                        break
                    found.append(more)
        elif any(len(n) == 2 and arg.startswith(n) and len(arg) > 2 for n in names):
            found = [arg[2:]]
    return found


def snakemake_argv(args: list[str], cwd: str) -> list[str]:
    """The Snakemake command `sweepbench run ARGS` runs in `cwd`: the packaged Snakefile, the folder
    (cwd, or the user's --directory) as the working directory, its config.yaml unless the user gives
    --configfile, then ARGS unchanged. A SweepbenchError when there is no config to run."""
    directory = _option_values(args, ("-d", "--directory"))
    folder = os.path.abspath(os.path.join(cwd, directory[0])) if directory else os.path.abspath(cwd)
    argv = [sys.executable, "-m", "snakemake", "--snakefile", SNAKEFILE]
    argv += [] if directory else ["--directory", folder]
    if _option_values(args, ("--configfile", "--configfiles")) is None:
        config = os.path.join(folder, "config.yaml")
        if not os.path.isfile(config):
            raise SweepbenchError(f"no config.yaml here ({folder}); allowed: sweepbench init to write one, "
                                  "or --configfile FILE")
        argv += ["--configfile", config]
    return argv + list(args)


def check_configs(argv: list[str]) -> None:
    """Read each config file of a Snakemake command line as the workflow will (planner.load_config),
    before Snakemake starts: one that is not UTF-8 or not YAML is one line here, where Snakemake's
    own reading of it printed a 50-line traceback."""
    from sweepbench.plan.planner import load_config

    for path in _option_values(argv, ("--configfile", "--configfiles")) or []:
        load_config(path)


def cmd_run(args: list[str]) -> int:
    """`sweepbench run [snakemake options...]`: Snakemake on the packaged workflow in this folder. It
    replaces this process (POSIX), so its output, signals and exit code are Snakemake's."""
    try:
        argv = snakemake_argv(args, os.getcwd())
        check_configs(argv)
    except SweepbenchError as err:
        print(f"sweepbench: {err}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    if any(os.path.isfile(os.path.join(bindir, name)) for name in ("sweepbench", "sweepbench.exe")):
        # the rules call `sweepbench`: the one of this installation, even in a venv that is not activated
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if os.name == "posix":
        os.execve(sys.executable, argv, env)
    import subprocess

    return subprocess.run(argv, env=env).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweepbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sweepbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _data_parsers(sub)
    _table_parsers(sub)
    _workflow_parsers(sub)
    return parser


def _data_parsers(sub) -> None:
    """prepare, workloads, plan: what a run needs before it trains."""
    p = sub.add_parser("prepare", help="turn a dataset's raw files (found offline, see README) into a tensor file")
    p.add_argument("--dataset", required=True, choices=PREPARED)
    p.add_argument("--raw-dir", default=OPTIONS["raw_dir"].default,
                   help="searched first: <raw-dir>/<folder>/raw/ (default data), then system folders")
    p.add_argument("--data-dir", default=OPTIONS["data_dir"].default,
                   help="where <dataset>.pt goes (default resources)")
    p.add_argument("--out", help="tensor file to write (default <data-dir>/<dataset>.pt)")
    p.add_argument("--download", action="store_true", help="download missing files (needs the internet)")
    p.add_argument("--tiny", action="store_true",
                   help="first write a tiny generated dataset in the real IDX format to --raw-dir (smoke runs)")
    sub.add_parser("workloads", help="list the workloads and their defaults")
    p = sub.add_parser("init", help="write a starter config.yaml and my_workload.py (your own model and data) "
                                    "that run as they are")
    p.add_argument("folder", nargs="?", default=".", help="where to write them (default: here; never overwrites)")
    p = sub.add_parser("plan", help="validate a config and list its studies, cells and runs")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--json", action="store_true",
                   help="print the whole plan as JSON, as the workflow writes results/plan.json (each run spec once, "
                        "in its cell's runs; a job's run <dir> trains cell run <job>/<dir>)")


def _table_parsers(sub) -> None:
    """aggregate, report, baseline, check: records -> tables -> report and verdicts."""
    p = sub.add_parser("aggregate", help="run records -> tables under results/tables/")
    p.add_argument("--plan", default="results/plan.json")
    p.add_argument("--runs-dir", default="results/runs")
    p.add_argument("--out", default="results/tables")
    p.add_argument("--partial", action="store_true",
                   help="tabulate the records there are (a sweep still running); cells.csv counts the missing ones")
    p = sub.add_parser("report", help="render report/index.html and report/report.pdf from the tables")
    p.add_argument("--plan", default="results/plan.json")
    p.add_argument("--tables", default="results/tables")
    p.add_argument("--runs-dir", default="results/runs")
    p.add_argument("--check-dir", default="results/check",
                   help="regression-check results, shown when present (and the check history beside the folder, "
                        "history.csv, from two checks on)")
    p.add_argument("--out", default="report")
    p.add_argument("--no-pdf", action="store_true", help="HTML only")
    p.add_argument("--figures-dir",
                   help="also write every figure as an SVG file under this folder (<study>/<nn>-<title>.svg)")
    p.add_argument("--workers", type=int, default=usable_cores(),
                   help="processes drawing the studies' figures at once (default: this process's CPUs)")
    p = sub.add_parser("export", help="export the recorded runs for another viewer: export tensorboard")
    p.add_argument("format", choices=["tensorboard"], help="tensorboard: event files, one folder per run")
    p.add_argument("--tables", default="results/tables", help="the tables (runs.csv lists the runs)")
    p.add_argument("--runs-dir", default="results/runs")
    p.add_argument("--out", default="results/tensorboard", help="folder to write (replaced whole)")
    p = sub.add_parser("baseline", help="freeze the current tables as a baseline: baseline save NAME")
    p.add_argument("action", choices=["save"])
    p.add_argument("name", help="baseline folder name under --root, e.g. default")
    p.add_argument("--tables", default="results/tables")
    p.add_argument("--root", default="baselines")
    p = sub.add_parser("check", help="compare the current tables with a baseline; exit 1 on a regression")
    p.add_argument("--baseline", required=True, help="name of a folder under --root")
    p.add_argument("--tables", default="results/tables")
    p.add_argument("--plan", default="results/plan.json", help="for the config's `check:` tolerances")
    p.add_argument("--out", default="results/check")
    p.add_argument("--root", default="baselines")
    p.add_argument("--history", default=None,
                   help="add this check to this history file (trends and lasting changes in the report; default "
                        "history.csv beside the --out folder, e.g. results/history.csv; '' for none)")
    p.add_argument("--no-fail", action="store_true",
                   help="exit 0 even on a regression or an unusable baseline (the verdict is in the files; "
                        "the workflow's check rule uses this so the report can show it)")


def _workflow_parsers(sub) -> None:
    """run, train-pack and status: the workflow, what its jobs run, and where a sweep stands."""
    p = sub.add_parser("run", help="run the workflow in this folder (its config.yaml); other arguments go to Snakemake",
                       description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, metavar="SNAKEMAKE_OPTION",
                   help="any option or target of snakemake, e.g. --cores 2, -n, --profile PROFILE")
    p = sub.add_parser("train-pack", help="train several resolved run specs in one process (workflow jobs)")
    p.add_argument("--runs-file", required=True,
                   help='JSON list of {"dir": "lr~0.1/seed~0", "seed": N, "spec": {...}} '
                        "(the workflow's results/specs/<job>.json)")
    p.add_argument("--out", required=True, help="job folder; each run goes to <out>/<dir>")
    p.add_argument("--manifest", help="file written (atomically) once every run of the job has a complete record")
    p.add_argument("--cycle-from-plan", metavar="PLAN",
                   help="batch_cycle_from: derive the runs' batch cycle from the records of the study the plan names")
    p.add_argument("--job", help="the job's id in the plan (with --cycle-from-plan)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--gpu-slots", type=int, default=None, help="GPU slots the job holds (recorded in run.json)")
    side = p.add_mutually_exclusive_group()
    side.add_argument("--exclusive", dest="exclusive", action="store_true", default=None,
                      help="the scheduler runs this job alone on its cores and GPU (recorded in run.json)")
    side.add_argument("--shared", dest="exclusive", action="store_false",
                      help="other jobs may run beside this one (recorded in run.json)")
    p.add_argument("--slurm-tasks", type=int, default=0, metavar="N",
                   help="run as one of N SLURM tasks started by `srun -n N` (a study's resources.tasks): train "
                        "every run as rank SLURM_PROCID of N; rank 0 writes the records and the manifest")
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("probe", help="load a job's data and run its model once (the workflow, before training "
                                     "your own workload, model or data)")
    p.add_argument("--runs-file", required=True, help="a job's runs file (results/specs/<job>.json): its first run")
    p.add_argument("--out", required=True, help="JSON file written (atomically) when the probe passes")
    p = sub.add_parser("status", help="per study: runs planned, done, running, missing, diverged, broken (from the "
                                      "records on disk; safe while the workflow runs)")
    p.add_argument("--results-dir", default="results", help="the workflow's results folder (with plan.json)")
    p.add_argument("--workdir", default=".", help="where Snakemake runs (its .snakemake/locks/ says whether it runs)")
    p.add_argument("--json", action="store_true", help="print the counts, in-progress jobs and broken runs as JSON")


COMMANDS = {"train": cmd_train, "prepare": cmd_prepare, "workloads": cmd_workloads, "init": cmd_init, "plan": cmd_plan,
            "train-pack": cmd_train_pack, "probe": cmd_probe, "aggregate": cmd_aggregate,
            "report": cmd_report, "baseline": cmd_baseline, "check": cmd_check, "status": cmd_status,
            "export": cmd_export}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"] and argv[1:2] not in (["-h"], ["--help"]):
        return cmd_run(argv[1:])  # not parsed: every argument is Snakemake's
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SweepbenchError as err:
        print(f"sweepbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sweepbench status | head`: the reader left; nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
