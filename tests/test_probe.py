"""The shared-store probe on a real LocalCluster: every worker reports, nothing is left behind.

The SLURM tests cover a store the workers cannot see (a private mount namespace per
worker); these cover the gate itself: reports that arrive before the client's topic
subscription reaches the scheduler (the race behind a 60 s stall seen in CI), and a
cleanup that must not mask the error that stopped the probe.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from regulas.core.errors import ClusterError
from regulas.execution.probe import PLUGIN_NAME, PROBE_FOLDER, StoreGate


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def _plugins_on_scheduler(dask_scheduler) -> list[str]:  # type: ignore[no-untyped-def]
    return list(dask_scheduler.worker_plugins)


def test_every_connected_worker_passes_and_nothing_is_left(client: Client, tmp_path: Path) -> None:
    gate = StoreGate(client, tmp_path, timeout_s=30)
    try:
        assert set(gate.passed) == set(client.nthreads())
        assert PLUGIN_NAME in client.run_on_scheduler(_plugins_on_scheduler)
    finally:
        gate.close()
    assert PLUGIN_NAME not in client.run_on_scheduler(_plugins_on_scheduler)
    assert list((tmp_path / PROBE_FOLDER).iterdir()) == []  # token and worker files removed


def test_reports_sent_before_the_subscription_lands_are_read_from_the_event_log(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The subscription is a fire-and-forget message; make it never arrive, the worst case
    # of it arriving after the workers' reports. The gate must still see every worker.
    monkeypatch.setattr(client, "subscribe_topic", lambda topic, handler: None)
    gate = StoreGate(client, tmp_path, timeout_s=30)
    try:
        assert set(gate.passed) == set(client.nthreads())
        assert gate.admit_new() == []  # each report is taken once
    finally:
        gate.close()


def test_reports_of_an_earlier_gate_do_not_count(client: Client, tmp_path: Path) -> None:
    first = StoreGate(client, tmp_path / "a", timeout_s=30)
    first.close()
    second = StoreGate(client, tmp_path / "b", timeout_s=30)
    try:
        # the scheduler's event log holds the first gate's reports too; only this token counts
        assert set(second.passed) == set(client.nthreads())
        assert all(path.name.startswith(f"driver-{second.token}") for path in (tmp_path / "b" / PROBE_FOLDER).iterdir())
    finally:
        second.close()


def test_cleanup_does_not_mask_the_error_that_stopped_the_probe(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faults that cannot be caused on demand: no report ever reaches the driver, and a
    # worker that is still joining has no copy of the plugin to remove (KeyError).
    monkeypatch.setattr(client, "subscribe_topic", lambda topic, handler: None)
    monkeypatch.setattr(client, "get_events", lambda topic=None: [])

    def unregister(name: str, nanny: bool | None = None) -> None:
        raise KeyError(name)

    monkeypatch.setattr(client, "unregister_worker_plugin", unregister)
    with pytest.raises(ClusterError, match="did not report the store probe within 1 s"):
        StoreGate(client, tmp_path, timeout_s=1)
    assert list((tmp_path / PROBE_FOLDER).iterdir()) == []
    monkeypatch.undo()
    client.unregister_worker_plugin(PLUGIN_NAME)  # the real removal, for the tests after this one
