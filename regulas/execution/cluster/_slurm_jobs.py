"""What SLURM's command-line tools say about jobs: states, pending reasons, exit codes, logs.

Only ``squeue`` and ``scontrol`` are used: ``sacct`` needs the accounting database,
which many clusters (and the single-node dev cluster) do not run.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

#: states in which a job may still run (or is about to); anything else has ended
ACTIVE_STATES = frozenset(
    {
        "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUED",
        "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SIGNALING", "STAGE_OUT", "STOPPED",
    }
)

#: pending reasons that mean "never, as requested" (the job is legal but will not be scheduled)
HOPELESS_REASONS = frozenset(
    {
        "PartitionTimeLimit", "PartitionNodeLimit", "PartitionConfig", "BadConstraints",
        "InvalidAccount", "InvalidQOS", "AccountNotAllowed", "QOSMaxWallDurationPerJobLimit",
        "QOSMaxCpuPerJobLimit", "QOSMaxMemoryPerJob", "DependencyNeverSatisfied",
    }
)

COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class JobInfo:
    """One line of ``squeue``: job id, state (e.g. RUNNING, FAILED) and reason."""

    job_id: str
    state: str
    reason: str

    @property
    def ended(self) -> bool:
        return self.state not in ACTIVE_STATES

    @property
    def hopeless(self) -> bool:
        return self.state == "PENDING" and self.reason in HOPELESS_REASONS

    def describe(self) -> str:
        return f"job {self.job_id} {self.state}" + (f" ({self.reason})" if self.reason not in ("", "None") else "")


class SlurmCommandError(RuntimeError):
    """A SLURM command failed or did not answer in time."""


async def run_command(*argv: str, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """stdout of ``argv``; :class:`SlurmCommandError` with its stderr when it fails."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        raise SlurmCommandError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError as exc:
        proc.kill()
        raise SlurmCommandError(f"{' '.join(argv)} did not answer within {timeout_s:.0f} s") from exc
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise SlurmCommandError(f"{' '.join(argv)} failed ({proc.returncode}): {err.decode().strip()}")
    return out.decode()


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """Lines of ``squeue --format=%i|%T|%r`` -> job id -> :class:`JobInfo`."""
    jobs = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            jobs[parts[0]] = JobInfo(*parts)
    return jobs


async def job_states(job_name: str) -> dict[str, JobInfo]:
    """This user's jobs called ``job_name``, also those that ended recently (``MinJobAge``)."""
    out = await run_command("squeue", "--noheader", "--me", "--states=all", f"--name={job_name}", "--format=%i|%T|%r")
    return parse_squeue(out)


async def job_exit_code(job_id: str) -> str | None:
    """``ExitCode`` of ``scontrol show job`` (e.g. ``1:0``: exit status 1, no signal)."""
    try:
        out = await run_command("scontrol", "--oneliner", "show", "job", job_id)
    except SlurmCommandError:
        return None  # purged from the controller already
    match = re.search(r"\bExitCode=(\S+)", out)
    return match.group(1) if match else None


def log_tail(path: Path, max_lines: int = 25, max_bytes: int = 8192) -> str:
    """The last lines of a job log, or why there is none."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc.strerror or exc})"
    lines = data.splitlines()[-max_lines:]
    return "\n".join(lines) if lines else "(the log is empty)"


_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def walltime_seconds(text: str) -> int:
    """Seconds in a SLURM time limit: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.

    Raises ValueError for anything else (``UNLIMITED`` included: workers need an end).
    """
    match = _WALLTIME.match(text.strip())
    if not match:
        raise ValueError(text)
    days, a, b, c = match.groups()
    if days is not None:  # D-H[:M[:S]]
        hours, minutes, seconds = int(a), int(b or 0), int(c or 0)
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if c is not None:  # H:M:S
        return (int(a) * 60 + int(b)) * 60 + int(c)
    if b is not None:  # M:S
        return int(a) * 60 + int(b)
    return int(a) * 60  # M
