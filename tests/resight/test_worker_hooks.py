"""Recovery hooks run in the worker that serves the workload only (one worker per queue)."""

from __future__ import annotations

from types import SimpleNamespace

from resight.conf.celery import serves


def worker(*queues: str) -> object:
    return SimpleNamespace(task_consumer=SimpleNamespace(queues=[SimpleNamespace(name=q) for q in queues]))


def test_a_hook_runs_only_in_the_worker_of_its_queue() -> None:
    assert serves(worker("bulk"), "bulk")
    assert serves(worker("bulk", "training"), "training")
    assert not serves(worker("interactive"), "bulk")
    assert serves(None, "bulk")  # a worker that does not say: better twice (idempotent) than never
