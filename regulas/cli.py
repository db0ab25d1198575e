"""Command line of regulas: run, report, status, verify, show-config, cluster-script.

Exit codes: 0 all tasks done; 1 some task failed (recorded in the database), or verify
found damaged chunks (their tasks are set back to pending for the next run);
2 invalid config or store (nothing was started), the study is run by another driver (or
was taken over from this one), the store's disk filled up, or the cluster cannot run tasks
(e.g. no worker connected or answering for cluster.startup_timeout_s); in the last two the
study is interrupted and resumes on a rerun;
130 interrupted (Ctrl-C); 143 terminated by SIGTERM (SLURM walltime, scancel) and 129 by
SIGHUP; 141 the reader of the output went away (regulas status | head): 128 + the
signal number, as a shell reports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from regulas import __version__
from regulas.core.errors import ConfigError, RegulasError, Terminated

if TYPE_CHECKING:
    from regulas.core.spec import StudySpec
    from regulas.core.workload import Workload
    from regulas.reports import ReportRun
    from regulas.store.root import StoreLayout

EXIT_OK, EXIT_FAILED_TASKS, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE, as a shell reports a writer killed by it
#: the default store.root (regulas/core/config/defaults.yaml), where `regulas status` looks
DEFAULT_STORE_ROOT = "./regulas-out"
OVERRIDES_HELP = "key=value, +key=value (adds a key), group=option (e.g. cluster=slurm)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="regulas", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"regulas {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run (or resume) a study")
    run.add_argument("config", help="study config YAML")
    run.add_argument("overrides", nargs="*", default=[], help=OVERRIDES_HELP)
    run.add_argument("--restart", action="store_true",
                     help="discard the study's stored results (rows and arrays) and run it from the start")

    report = sub.add_parser("report", help="rerun a finished study's reports from its database (no refitting)")
    report.add_argument("config", help="the study config (or a regulAS report-only config), or a store root")
    report.add_argument("overrides", nargs="*", default=[], help=OVERRIDES_HELP)
    report.add_argument("--study", help="with a store root holding several studies: the study to report on")
    report.add_argument("--out", type=Path, help="write the reports here instead of STORE_ROOT/reports/STUDY "
                        "(e.g. for a read-only store)")

    status = sub.add_parser("status", help="progress and failures of the studies in a store (also while running)")
    status.add_argument(
        "store_root",
        nargs="?",
        default=DEFAULT_STORE_ROOT,
        help=f"the store.root folder of a study (holds regulas.db; default {DEFAULT_STORE_ROOT})",
    )
    status.add_argument("--study", help="only this study")
    status.add_argument("--failures", type=int, default=10, help="show at most this many failed tasks (default 10)")

    verify = sub.add_parser(
        "verify", help="read every recorded chunk of a store's arrays; damaged ones are recomputed by the next run"
    )
    verify.add_argument("store_root", help="the store.root folder (holds regulas.db and the Zarr arrays)")
    verify.add_argument("--study", help="only this study")

    show = sub.add_parser("show-config", help="print the resolved config after validation")
    show.add_argument("config", help="study config YAML")
    show.add_argument("overrides", nargs="*", default=[], help=OVERRIDES_HELP)

    script = sub.add_parser(
        "cluster-script", help="print the batch script of one worker job without submitting it (cluster=slurm)"
    )
    script.add_argument("config", help="study config YAML")
    script.add_argument("overrides", nargs="*", default=[], help=OVERRIDES_HELP)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "show-config":
            return _show_config(args.config, args.overrides)
        if args.command == "run":
            return _run(args.config, args.overrides, restart=args.restart)
        if args.command == "report":
            return _report(args.config, args.overrides, args.study, args.out)
        if args.command == "cluster-script":
            return _cluster_script(args.config, args.overrides)
        if args.command == "status":
            return _status(Path(args.store_root), args.study, args.failures)
        if args.command == "verify":
            return _verify(Path(args.store_root), args.study)
    except (ConfigError, RegulasError) as exc:
        # one line, whatever the YAML parser or OmegaConf put into the message
        print("regulas: error: " + " ".join(str(exc).split()), file=sys.stderr)
        # zarr's event loop may still hold the sibling chunk reads or writes of the one that
        # failed (a full disk, a chunk failing its checksum: they fail the same way): at exit
        # asyncio would log each of them ("Task exception was never retrieved", "Task was
        # destroyed but it is pending!") after the one message
        logging.getLogger("asyncio").disabled = True
        sys.unraisablehook = _ignore_unraisable
        return EXIT_BAD_INPUT
    except Terminated as exc:
        print(f"regulas: terminated ({exc.signame}); finished tasks are saved, rerun the same command to resume", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("regulas: interrupted; finished tasks are saved, rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    raise AssertionError(args.command)


def _ignore_unraisable(_: object) -> None:
    """A ``sys.unraisablehook`` that prints nothing."""


def console_main() -> None:
    """Entry point of the ``regulas`` script and ``python -m regulas``."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (regulas status | head): say nothing, as cat or grep would;
        # stdout goes to /dev/null so that the interpreter's own flush at exit stays quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


def _show_config(config: str, overrides: Sequence[str]) -> int:
    from regulas.core.config.targets import without_importing
    from regulas.study import load_study

    # _target_ checked from their modules' source: `regulas run` imports them (and checks what
    # needs the classes) before any work, and scikit-learn alone takes ~1 s to import
    with without_importing():
        spec = load_study(config, overrides)
    print(spec.yaml, end="")
    return EXIT_OK


def _cluster_script(config: str, overrides: Sequence[str]) -> int:
    from regulas.execution.cluster import make_backend
    from regulas.study import load_study

    spec = load_study(config, overrides)
    text = make_backend(spec.cluster).job_script()
    if text is None:
        raise ConfigError(
            f"backend {spec.cluster.backend!r} submits no batch jobs; cluster-script needs a batch backend "
            "(add the override cluster=slurm)",
            key="cluster.backend",
            source=config,
        )
    print(text, end="" if text.endswith("\n") else "\n")
    return EXIT_OK


def _run(config: str, overrides: Sequence[str], *, restart: bool = False) -> int:
    from regulas.execution.signals import stop_on_signals
    from regulas.study import load_study, run

    spec = load_study(config, overrides)
    if spec.workload.reports_only:
        return _write_reports_of(spec)
    with stop_on_signals():
        result = run(spec, restart=restart)
    summary = result.summary
    out = sys.stdout
    print(
        f"\nstudy {summary.study!r}: {summary.total} tasks; {summary.skipped_done} were already done, "
        f"{summary.done} done now, {summary.failed + summary.exhausted} failed; "
        f"{summary.rows_written} result rows; {summary.elapsed_s:.1f} s (the database writer {summary.writer_s:.1f} s)",
        file=out,
    )
    print(f"database: {summary.db_path}\narrays:   {summary.arrays_path}/{summary.study}", file=out)
    if result.reports is not None:
        _print_reports(result.reports)
    if summary.failures:
        print(f"\n{len(summary.failures)} task(s) not done:", file=out)
        for f in summary.failures[:10]:
            print(f"  {f['key'][:12]} {f['kind']} {f['block']} attempts={f['attempts']}: "
                  f"{f['error_type']}: {f['error_message']}", file=out)
        print(f"tracebacks: regulas status {Path(summary.db_path).parent}", file=out)
        return EXIT_FAILED_TASKS
    return EXIT_OK


#: file suffixes printed as ``figure:``; every other report file (CSV tables, ...) as ``report:``
IMAGE_SUFFIXES = frozenset({".png", ".svg", ".pdf", ".jpg", ".jpeg"})


def _file_label(path: Path) -> str:
    """``figure`` for an image, ``report`` for a table or any other file (both 6 characters wide)."""
    return "figure" if path.suffix.lower() in IMAGE_SUFFIXES else "report"


def _print_reports(reports: ReportRun) -> None:
    if reports.reused:
        print("reports: unchanged results and config, so the reports of the last run stand "
              "(`regulas report` writes them again)")
    for text in reports.texts:
        print(text)
    for path in reports.files:
        print(f"{_file_label(path)}:   {path}")
    if reports.page is not None:
        print(f"report:   {reports.page}")


def _report(target: str, overrides: Sequence[str], study: str | None, out: Path | None = None) -> int:
    from regulas.study import load_stored_study, load_study, report_dir

    if Path(target).is_dir():
        if overrides:
            raise ConfigError("overrides apply to a config file, not to a store root", source=target)
        workload, layout, name = load_stored_study(Path(target), study)
        return _write_reports(workload, layout, name, out or report_dir(layout.root, name))
    spec = load_study(target, overrides)
    return _write_reports_of(spec, out)


def _write_reports_of(spec: StudySpec, out: Path | None = None) -> int:
    from regulas.study import write_reports_of

    return _report_files(*write_reports_of(spec, out))


def _write_reports(workload: Workload, layout: StoreLayout, study: str, folder: Path) -> int:
    from regulas.study import write_reports

    return _report_files(study, write_reports(workload, layout, study, folder), folder)


def _report_files(study: str, reports: ReportRun, folder: Path) -> int:
    paths = reports.files
    figures = sum(_file_label(p) == "figure" for p in paths)
    print(f"study {study!r}: {len(paths)} report file(s) ({figures} figure(s)) in {folder}")
    for path in paths:
        print(f"  {_file_label(path)}:   {path}")
    if reports.page is not None:
        print(f"report:   {reports.page}")
    return EXIT_OK


def _status(root: Path, study_name: str | None, max_failures: int) -> int:
    from regulas.store.status import format_status

    print(format_status(root, study_name, max_failures))
    return EXIT_OK


def _verify(root: Path, study_name: str | None) -> int:
    from regulas.store.verify import format_checks, verify_store

    checks = verify_store(root, study_name, log=lambda line: print(f"regulas: {line}", file=sys.stderr))
    print(format_checks(checks))
    return EXIT_FAILED_TASKS if any(c.damaged for c in checks) else EXIT_OK
