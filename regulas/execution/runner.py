"""The driver: plan a study, skip what the database says is done, run the rest on Dask.

Flow: launch the cluster (a local one at once, so its workers start and import the
workload's modules while the driver reads the data; batch jobs once the data is checked)
-> read and check the inputs -> open (or resume) the study row -> the workload writes its
inputs and creates its arrays -> plan -> check chunk ownership -> register tasks -> wait
for a worker (not at all when nothing is left to run) -> check
that the workers share the store folder -> keep at most ``execution.max_in_flight``
tasks submitted -> the single writer commits each outcome (rows + done mark in one
transaction) -> summary. While it waits for results the driver, at least every second,
asks the cluster backend whether it can still run tasks (e.g. SLURM jobs that die at
start), checks the store probe of the workers that joined since (each worker runs it
before its first task, see :mod:`regulas.execution.probe`), checks worker heartbeats and
task time limits (:mod:`regulas.execution.stalls`), and gives up when no worker has been
connected, or none has answered, for ``cluster.startup_timeout_s`` (e.g. every SLURM job
lost and the replacements pending, or the only worker frozen).
"""

from __future__ import annotations

import importlib.util
import math
import sqlite3
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import dask
from distributed import Client, Future, as_completed
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from regulas.core.errors import LeaseLost, StoreError
from regulas.core.spec import StudySpec
from regulas.core.task import Task
from regulas.core.workload import StudyContext
from regulas.execution.cluster import ClusterBackend, make_backend
from regulas.execution.logs import ThirdPartyLog, port_of, third_party_logs
from regulas.execution.probe import StoreGate
from regulas.execution.progress import RunProgress
from regulas.execution.shared import SharedInputs
from regulas.execution.stalls import OverLimit, StallWatch, TaskLimits, scheduler_config
from regulas.execution.worker import DISK_FULL, execute_task
from regulas.store import schema
from regulas.store.arrays import StudyArrays
from regulas.store.database import (
    TaskState,
    check_data_fingerprint,
    check_pinned_inputs,
    delete_study,
    finish_study,
    open_study,
    open_write,
    record_inputs,
    record_lease,
    recorded_chunk_sizes,
    register_arrays,
    register_tasks,
    release_lease,
    reopen_tasks,
    write_study_rows,
)
from regulas.store.inputs import FileState
from regulas.store.lease import Lease, acquire_lease
from regulas.store.root import StoreLayout, check_writable, write_marker
from regulas.store.sink import Sink, TaskOutcome
from regulas.store.space import DiskReserve, is_disk_full, store_full

#: seconds to fetch one finished task's outcome (a few rows) before the driver polls the
#: cluster again; doubled for each retry of the same task, up to MAX_RESULT_WAIT_S
RESULT_WAIT_S = 5.0
MAX_RESULT_WAIT_S = 300.0

VERSIONED_PACKAGES = ("regulas-hpc", "numpy", "scipy", "scikit-learn", "pandas", "dask", "distributed", "zarr", "SQLAlchemy")


def package_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class RunSummary:
    study: str
    study_id: int
    total: int
    skipped_done: int
    submitted: int
    done: int
    failed: int
    exhausted: int
    rows_written: int
    elapsed_s: float
    writer_s: float  # the single writer's time in the database
    resumed: bool
    db_path: str
    arrays_path: str
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.exhausted == 0


def _failure(task: Task, exc: BaseException) -> TaskOutcome:
    """An outcome for a task whose future itself failed (e.g. its worker died too often, or
    a shared input it names raised: Dask hands that error, with its worker-side traceback,
    to every task depending on it)."""
    now = time.time()
    return TaskOutcome(
        key=task.key,
        status="failed",
        started_at=now,
        finished_at=now,
        worker="",
        error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        error_message=str(exc) or repr(exc),
        traceback="".join(traceback.format_exception(exc)) if exc.__traceback__ is not None else None,
    )


def plan_study(
    spec: StudySpec, engine: Engine, progress: RunProgress | None = None
) -> tuple[int, bool, list[Task], dict[str, TaskState]]:
    """Driver-side preparation: pinned inputs, study row, inputs, arrays, plan, ownership,
    task rows, chunk files of the done tasks.

    A rerun whose input files or data fingerprint differ from those recorded at the
    study's first run is refused here, before anything is written.
    """
    # a study named after its data (a regulAS file) cannot have its data changed under it:
    # other data is another study, and equal data rewritten to other bytes is the same one
    files = [] if spec.study.name_from_data else [FileState.of(p) for p in spec.input_files()]
    data_fingerprint = spec.workload.data_fingerprint(spec.seed)
    checked = check_pinned_inputs(
        engine, name=spec.study.name, config_hash=spec.config_hash, files=files,
        data_fingerprint=data_fingerprint, config=spec.source,
    )
    record = open_study(
        engine,
        name=spec.study.name,
        workload=spec.study.workload,
        config_yaml=spec.yaml,
        config_hash=spec.config_hash,
        root_seed=spec.seed,
        package_versions=package_versions(),
        describe_change=spec.describe_change,
    )
    if checked is None:  # a new study: pin what it is about to read
        record_inputs(engine, record.id, files, data_fingerprint)
    else:  # same content under a new mtime, or files a study of an older store did not record
        record_inputs(engine, record.id, [*checked.refreshed, *checked.unrecorded])
    arrays = StudyArrays(spec.store.arrays_path, spec.study.name)
    ctx = StudyContext(name=spec.study.name, root_seed=spec.seed, arrays=arrays)
    fingerprint = spec.workload.prepare(ctx)
    check_data_fingerprint(engine, record.id, fingerprint, name=spec.study.name, config=spec.source)
    record_inputs(engine, record.id, [], fingerprint)
    tasks = spec.workload.plan(ctx, fingerprint)
    duplicated = [k for k, n in Counter(t.key for t in tasks).items() if n > 1]
    if duplicated:
        raise StoreError(f"the plan has {len(duplicated)} duplicated task keys (e.g. {duplicated[0]}): a workload bug")
    arrays.check_ownership((t.key, t.regions) for t in tasks)
    register_arrays(engine, record.id, arrays.describe())
    write_study_rows(engine, record.id, spec.workload.study_rows(ctx))
    status = register_tasks(engine, record.id, tasks)
    done = [t for t in tasks if status[t.key].status == "done"]
    lost = arrays.missing_units(((t.key, t.regions) for t in done), recorded_chunk_sizes(engine, record.id))
    if lost:
        reopen_tasks(engine, record.id, lost)
        names = sorted({a for arrays_of in lost.values() for a in arrays_of})
        if progress is not None:
            progress.message(
                f"{len(lost)} done task(s) have chunk files missing or not of their recorded size in array(s) "
                f"{', '.join(names)}: they run again"
            )
        status = register_tasks(engine, record.id, tasks)
    return record.id, record.resumed, tasks, status


def run_study(
    spec: StudySpec, *, client: Client | None = None, progress: RunProgress | None = None, restart: bool = False
) -> RunSummary:
    """Run (or resume) a study to the end; failed tasks are recorded, never raised.

    ``client``: an existing Dask client to use instead of starting ``spec.cluster``.
    ``restart``: first discard the study's results (its rows and its Zarr group) if it exists.
    """
    t0 = time.monotonic()
    progress = progress or RunProgress(spec.execution.progress, spec.execution.progress_every_s)
    backend = make_backend(spec.cluster) if client is None else None
    with third_party_logs(spec.store.root_path) as logs:
        try:
            if backend is not None and backend.launch_early:
                _launch(spec, backend, logs)  # its workers start while the data loads
            spec.workload.check_inputs(spec.seed)  # bad data stops the run before the store exists
            spec = spec.named_by_data()  # a regulAS file: one study per data set of its experiment name
            for note in spec.workload.run_notes():
                progress.message(note)
            if backend is not None and not backend.launch_early:
                _launch(spec, backend, logs)
            summary = _run_locked(spec, client, backend, progress, t0, restart, logs)
        finally:
            if backend is not None:
                # Ctrl-C, SIGTERM: not an Exception; the results are committed, close quickly
                interrupt = sys.exc_info()[1]
                backend.hurry = interrupt is not None and not isinstance(interrupt, Exception)
                backend.close()
        if logs.written:
            progress.message(f"messages of dask and other libraries: {logs.path}")
    return summary


def _launch(spec: StudySpec, backend: ClusterBackend, logs: ThirdPartyLog) -> None:
    # said when the run waits for it (see _execute): a run refused by bad data or by another
    # driver's lease prints its one error line only
    backend.preload = tuple(m for m in spec.workload.worker_modules() if _importable(m))
    backend.worker_log = logs.path  # a local worker's records join the driver's
    with dask.config.set(scheduler_config(spec.cluster.worker_ttl_s)):  # read when the scheduler starts
        backend.launch()


def _importable(module: str) -> bool:
    """Whether ``module`` can be found (a worker that fails to import a preload never starts)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _run_locked(
    spec: StudySpec,
    client: Client | None,
    backend: ClusterBackend | None,
    progress: RunProgress,
    t0: float,
    restart: bool,
    logs: ThirdPartyLog,
) -> RunSummary:
    """:func:`run_study` once the inputs are checked: the store, the lease, the run."""
    check_writable(
        spec.store.root_path,
        "store.root",
        "regulas writes its database, arrays and lease there: choose a writable store.root "
        "(regulas status and regulas report --out DIR can still read a read-only store)",
    )
    logs.to_file()
    write_marker(StoreLayout(spec.store.root_path, db=spec.store.db, arrays=spec.store.arrays))
    # one driver per study: refused here, before the study's tables or arrays are touched
    lease = acquire_lease(
        spec.store.root_path, spec.study.name, timeout_s=spec.execution.lease_timeout_s, log=progress.message
    )
    # one reserve per lease: a driver whose lease went stale may still hold its own
    for stale in lease.path.parent.glob(f"{lease.path.stem}.*.reserve"):
        stale.unlink(missing_ok=True)
    reserve = DiskReserve(lease.path.with_name(f"{lease.path.stem}.{lease.token}.reserve"))
    try:
        reserve.hold()
        return _run_study(spec, client, backend, progress, t0, restart, lease, reserve)
    except (OSError, SQLAlchemyError, sqlite3.Error) as exc:  # the sink writes through sqlite3 itself
        if not is_disk_full(exc):
            raise
        raise store_full(spec.store.root_path, f"{type(exc).__name__}: {exc}") from None
    finally:
        reserve.release()
        lease.release()


def _snapshot(spec: StudySpec, progress: RunProgress, state: dict[str, str]) -> Callable[[], dict[str, Any]]:
    """The progress a remote ``regulas status`` reads (see :class:`regulas.store.lease.Lease`)."""

    def snapshot() -> dict[str, Any]:
        eta = progress.eta()
        return {
            "study": spec.study.name,
            "workload": spec.study.workload,
            "status": state["status"],
            "total": progress.total,
            "done": progress.done,
            "failed": progress.failed,
            "rate": progress.rate(),
            "eta_s": eta if math.isfinite(eta) else None,
        }

    return snapshot


def _run_study(
    spec: StudySpec,
    client: Client | None,
    backend: ClusterBackend | None,
    progress: RunProgress,
    t0: float,
    restart: bool,
    lease: Lease,
    reserve: DiskReserve,
) -> RunSummary:
    engine = open_write(spec.store.db_path, spec.workload.store_tables())
    state = {"status": "running"}
    lease.snapshot = _snapshot(spec, progress, state)
    study_id: int | None = None
    try:
        if restart:
            # arrays first: rows without arrays are recomputed by the chunk check, while
            # arrays without rows would be reopened by a new study of the same name
            removed = StudyArrays(spec.store.arrays_path, spec.study.name).remove()
            if delete_study(engine, spec.study.name) or removed:
                progress.message(f"study {spec.study.name!r}: its results are discarded (--restart); it starts again")
        try:
            study_id, resumed, tasks, status = plan_study(spec, engine, progress)
        except (OSError, SQLAlchemyError) as exc:
            if is_disk_full(exc):  # e.g. creating the arrays: the study row may exist already
                reserve.release()
                _mark_interrupted(engine, spec.study.name)
            raise
        record_lease(engine, study_id, lease.holder)
        max_attempts = spec.execution.max_attempts
        skipped = sum(status[t.key].status == "done" for t in tasks)
        exhausted = [t for t in tasks if status[t.key].status == "failed" and status[t.key].attempts >= max_attempts]
        exhausted_keys = {t.key for t in exhausted}
        todo = [t for t in tasks if status[t.key].status != "done" and t.key not in exhausted_keys]
        retried = sum(status[t.key].status == "failed" for t in todo)
        progress.message(
            f"study {spec.study.name!r} ({spec.study.workload}): {len(tasks)} tasks, {skipped} already done, "
            f"{len(todo)} to run" + (f" ({retried} failed before, retried: attempt limit {max_attempts})" if retried else "")
            + (f"; {len(exhausted)} failed {max_attempts} times and are not retried" if exhausted else "")
        )
        sink = Sink(
            engine,
            study_id,
            {k: v.id for k, v in status.items()},
            commit_every_s=spec.execution.commit_every_s,
            commit_every_rows=spec.execution.commit_every_rows,
            lease_token=lease.token,
        )
        try:
            if todo:
                _execute(spec, todo, sink, progress, client, backend, total=len(tasks), already_done=skipped,
                         attempts={t.key: status[t.key].attempts for t in todo})
        except LeaseLost:
            sink.discard()  # the study is the other driver's now: nothing more is written, not even its status
            state["status"] = "taken over"
            raise
        except BaseException as exc:
            # commit what did finish before the interruption (Ctrl-C, cluster loss, full disk);
            # on a full disk the reserve makes room for that and the interrupted mark
            if is_disk_full(exc):
                reserve.release()
            try:
                sink.close()
            except (SQLAlchemyError, sqlite3.Error) as second:
                if not is_disk_full(second):
                    raise
                reserve.release()
                if not is_disk_full(exc):
                    raise exc from second
            state["status"] = "interrupted"
            finish_study(engine, study_id, "interrupted")
            raise
        sink.close()
        failures = _failures(engine, study_id)
        final = "done" if not failures else "failed"
        finish_study(engine, study_id, final)
        state["status"] = final
        return RunSummary(
            study=spec.study.name,
            study_id=study_id,
            total=len(tasks),
            skipped_done=skipped,
            submitted=len(todo),
            done=sink.done,
            failed=sink.failed,
            exhausted=len(exhausted),
            rows_written=sink.rows_written,
            elapsed_s=time.monotonic() - t0,
            writer_s=sink.write_s,
            resumed=resumed,
            db_path=str(spec.store.db_path),
            arrays_path=str(spec.store.arrays_path),
            failures=failures,
        )
    finally:
        if study_id is not None and state["status"] != "taken over":
            _release_lease(engine, study_id, lease.token)
        engine.dispose()


def _mark_interrupted(engine: Engine, name: str) -> None:
    """Best effort: a full disk may refuse this update too (the status then says "driver gone")."""
    try:
        with engine.connect() as conn:
            study_id = conn.execute(select(schema.study.c.id).where(schema.study.c.name == name)).scalar()
        if study_id is not None:
            finish_study(engine, study_id, "interrupted")
    except SQLAlchemyError as exc:
        if not is_disk_full(exc):
            raise


def _release_lease(engine: Engine, study_id: int, token: str) -> None:
    try:
        release_lease(engine, study_id, token)
    except SQLAlchemyError as exc:
        if not is_disk_full(exc):  # a full disk may refuse it: the lease file still tells
            raise


def _execute(
    spec: StudySpec,
    todo: list[Task],
    sink: Sink,
    progress: RunProgress,
    client: Client | None,
    backend: ClusterBackend | None,
    *,
    total: int,
    already_done: int,
    attempts: Mapping[str, int],
) -> None:
    """Run ``todo`` on ``client``, or on the cluster ``backend`` launched (and closes)."""
    if client is None:
        assert backend is not None
        progress.message(f"starting {backend.describe()}")
        started = time.monotonic()
        client = backend.wait_ready()
        waited = time.monotonic() - started
        progress.message(
            f"cluster ready ({len(client.nthreads())} worker(s) connected"
            + (f"; waited {waited:.1f} s for it after planning)" if waited >= 0.05 else ")")
        )
    link = backend.dashboard_link() if backend is not None else None
    if link:
        wanted, got = port_of(getattr(spec.cluster, "dashboard_address", None)), port_of(link)
        taken = f" (port {wanted} was taken)" if wanted and got and wanted != got else ""
        progress.message(f"dashboard: {link}{taken}")
    gate = StoreGate(client, spec.store.root_path, timeout_s=spec.cluster.startup_timeout_s)
    try:
        progress.message(f"store {spec.store.root_path} is shared with the {len(gate.passed)} connected worker(s)")
        _run_tasks(spec, todo, sink, progress, client, backend, gate, total=total, already_done=already_done,
                   attempts=attempts)
    finally:
        gate.close()


def _run_tasks(
    spec: StudySpec,
    todo: list[Task],
    sink: Sink,
    progress: RunProgress,
    client: Client,
    backend: ClusterBackend | None,
    gate: StoreGate,
    *,
    total: int,
    already_done: int,
    attempts: Mapping[str, int],
) -> None:
    """Keep up to ``max_in_flight`` tasks submitted; hand each outcome to the sink.

    ``attempts``: each task's attempts before this run. A task over its time limit
    (:mod:`regulas.execution.stalls`) is cancelled, its worker restarted, and it is submitted
    again until it has used ``execution.max_attempts``; then it is recorded failed.
    """
    # an adaptive cluster grows while it runs: size the queue for what it may become
    threads = (backend.planned_threads() if backend is not None else None) or sum(client.nthreads().values()) or 1
    limit = spec.execution.max_in_flight or 4 * threads
    max_attempts = spec.execution.max_attempts
    blas = spec.cluster.blas_threads
    store_path = str(spec.store.arrays_path)
    pending = iter(todo)
    in_flight: dict[object, Task] = {}
    futures: dict[object, Future] = {}
    result_wait: dict[object, float] = {}  # futures whose result could not be fetched in time
    over_limit: dict[str, int] = {}  # task key -> its runs in this run cancelled over their time limit
    cancelled: set[object] = set()  # futures cancelled here: as_completed still yields them
    completed = as_completed()
    limits = TaskLimits(spec.execution.task_timeout_s)
    watch = StallWatch(client, limits, stall_timeout_s=spec.cluster.startup_timeout_s, message=progress.message,
                       owns_workers=backend is not None and backend.owns_workers)

    shared = SharedInputs(client, spec.workload, todo, store_path=store_path, study=spec.study.name, blas_threads=blas)

    def submit(task: Task) -> None:
        tries = over_limit.get(task.key, 0)  # a new key for each run: the cancelled one may linger
        future = client.submit(
            execute_task,
            spec.workload,
            task,
            store_path,
            spec.study.name,
            blas,
            shared.for_task(task),
            key=f"regulas-{task.key}" + (f"-{tries + 1}" if tries else ""),
            pure=False,
        )
        in_flight[future.key] = task
        futures[future.key] = future
        sink.submitted(task.key)
        completed.add(future)

    def submit_next() -> None:
        task = next(pending, None)
        if task is not None:
            submit(task)

    def record(task: Task, outcome: TaskOutcome) -> None:
        outcome.attempts += over_limit.pop(task.key, 0)  # its earlier runs in this run, cancelled
        if outcome.status == "done":
            limits.finished(task.kind, outcome.finished_at - outcome.started_at)
        sink.add(outcome)
        progress.update(outcome.status == "done")
        submit_next()
        shared.recorded(task)  # after submit_next: the next task may name what this one did

    def cancel(over: OverLimit) -> None:
        task = in_flight.pop(over.future_key, None)
        if task is None:  # finished meanwhile
            return
        future = futures.pop(over.future_key)
        result_wait.pop(over.future_key, None)
        cancelled.add(over.future_key)
        future.cancel()
        restarted = watch.restart(over.worker)
        tries = over_limit.get(task.key, 0) + 1
        used = attempts.get(task.key, 0) + tries
        what = (f"task {task.key[:12]} ({task.kind}) has run {over.ran_s:.0f} s on worker {over.worker.label}, "
                f"over its time limit of {limits.describe(task.kind)}")
        freed = "; its worker is restarted" if restarted else ""
        if used < max_attempts:
            # not pinned to other workers: Dask leaves a task whose allowed workers are all gone
            # (restarted) waiting for ever, even with loose restrictions
            progress.message(f"{what}: cancelled{freed}; attempt {used + 1} of {max_attempts} is submitted again")
            over_limit[task.key] = tries
            submit(task)
            return
        progress.message(f"{what}: cancelled{freed}; it used its {max_attempts} attempts and is recorded failed")
        record(task, _timed_out(task, over, limits.describe(task.kind), time.time()))

    def check() -> None:
        watch.poll()
        for over in watch.over_limit({k: t.kind for k, t in in_flight.items() if isinstance(k, str)}):
            cancel(over)

    progress.start(total=total, already_done=already_done)
    try:
        for _ in range(limit):
            submit_next()
        for future in _finished(completed, backend, gate, progress, watch, check):
            if future.key in cancelled:
                cancelled.discard(future.key)
                continue
            task = in_flight[future.key]
            wait_s = result_wait.get(future.key, RESULT_WAIT_S)
            try:
                outcome = future.result(timeout=wait_s)
            except TimeoutError as exc:
                if future.status == "error":  # the task itself raised it
                    outcome = _failure(task, exc)
                else:
                    # its result was lost with its worker and is computed again, maybe on a
                    # worker that joins (and must pass the probe) meanwhile: look again later
                    result_wait[future.key] = min(2 * wait_s, MAX_RESULT_WAIT_S)
                    completed.add(future)
                    continue
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: recorded, siblings go on
                outcome = _failure(task, exc)
            if outcome.error_type == DISK_FULL:  # not the task's fault: not an attempt either
                raise store_full(spec.store.root_path, f"task {task.key[:12]} on {outcome.worker}: {outcome.error_message}")
            del in_flight[future.key]
            del futures[future.key]
            result_wait.pop(future.key, None)
            future.release()
            record(task, outcome)
        watch.settle()
        if shared.computed:
            progress.message(f"shared computations: {shared.computed}, each computed once and reused by the tasks naming it "
                             f"({len(shared.of_task)} tasks)")
    finally:
        shared.release()
        progress.close()


def _timed_out(task: Task, over: OverLimit, limit: str, now: float) -> TaskOutcome:
    """The failure record of a task cancelled over its time limit for the last time."""
    return TaskOutcome(
        key=task.key,
        status="failed",
        started_at=now - over.ran_s,
        finished_at=now,
        worker=over.worker.address,
        error_type="regulas.TaskTimeout",
        error_message=(
            f"ran over its time limit of {limit}: cancelled after {over.ran_s:.0f} s on worker {over.worker.label}"
        ),
        traceback=None,
    )


def _finished(
    completed: as_completed,
    backend: ClusterBackend | None,
    gate: StoreGate,
    progress: RunProgress,
    watch: StallWatch,
    on_check: Callable[[], None],
    *,
    check_every_s: float = 1.0,
) -> Iterator[Future]:
    """The futures of ``completed`` as they finish. While waiting, at least every
    ``check_every_s``: ``backend.check()`` raises if the cluster can no longer run them,
    the gate checks the probe reports of workers that joined since, ``on_check`` looks at
    the workers' heartbeats and the tasks' time limits (``watch.poll()``), and a
    :class:`ClusterError` ends the wait once no worker has answered (none connected, or
    all silent) for ``cluster.startup_timeout_s``."""
    next_check = time.monotonic() + check_every_s
    while not completed.is_empty():
        now = time.monotonic()
        if now >= next_check:
            lines = backend.check() if backend is not None else []
            for line in lines + gate.admit_new():
                progress.message(line)
            on_check()
            if not completed.is_empty():
                watch.check_alive(gate.connected(), completed.count(), time.monotonic(),
                                  backend.describe_state if backend is not None else None)
            next_check = time.monotonic() + check_every_s
        with completed.thread_condition:  # as_completed notifies it after queueing a future
            if not completed.has_ready():
                completed.thread_condition.wait(timeout=0.1)
        if completed.has_ready():
            future = next(completed)
            assert isinstance(future, Future)
            yield future


def _failures(engine: Engine, study_id: int) -> list[dict[str, Any]]:
    t = schema.task
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.key, t.c.kind, t.c.block, t.c.attempts, t.c.error_type, t.c.error_message)
            .where(t.c.study_id == study_id, t.c.status != "done")
            .order_by(t.c.id)
        ).mappings()
        return [dict(r) for r in rows]
