"""The Celery task that runs a job returns how the job ended, so Flower's task list (built
from the workers' task events) tells a Failed job from a Completed one."""

from __future__ import annotations

import ast
import threading
import uuid

from tests.conftest import wait_for


def _results(events: list[dict], job_ids: list[str]) -> dict[str, str] | None:
    """Each job's task result, as its task-succeeded event carries it (None until all are in)."""
    task_job: dict[str, str] = {}
    results: dict[str, str] = {}
    for event in list(events):
        if event["type"] == "task-received" and event.get("name") == "sma.run_job":
            for job_id in job_ids:
                if job_id in event.get("args", ""):
                    task_job[event["uuid"]] = job_id
        elif event["type"] == "task-succeeded" and event.get("uuid") in task_job:
            results.setdefault(task_job[event["uuid"]], ast.literal_eval(event["result"]))
    return results if set(results) == set(job_ids) else None


def test_flower_sees_how_each_job_ended(api, processes, settings):
    from celery import Celery

    from smacommon.queue import celery_config

    group = f"events-{uuid.uuid4().hex[:6]}"
    app = Celery("sma-events-test", set_as_current=False)
    app.conf.update(celery_config(settings))  # the workers' broker, as Flower reads it
    events: list[dict] = []
    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": events.append})
        listener = threading.Thread(target=receiver.capture, kwargs={"wakeup": False},
                                    name="events-receiver", daemon=True)
        listener.start()
        try:
            # Redis hands events only to a receiver already subscribed: send one of our own
            # until it comes back, then start the worker
            probe = uuid.uuid4().hex
            with app.connection_for_write() as out:
                dispatcher = app.events.Dispatcher(out)
                wait_for(lambda: dispatcher.send("sma-probe", probe=probe) or any(
                    e.get("probe") == probe for e in list(events)),
                    timeout=15, what="the event receiver subscribed", every=0.2)
                dispatcher.close()
            processes.worker(group, env={"SMA_CELERY_EVENTS": "true"})
            failing = api.create_runbook(content="raise SystemExit(3)\n", worker_group=group)
            passing = api.create_runbook(content="print('ok')\n", worker_group=group)
            failed, done = api.start(failing["name"]), api.start(passing["name"])
            assert api.wait(failed["id"])["status"] == "Failed"
            assert api.wait(done["id"])["status"] == "Completed"
            results = wait_for(lambda: _results(events, [failed["id"], done["id"]]),
                               timeout=15, what="both tasks' task-succeeded events")
        finally:
            receiver.should_stop = True
            listener.join(timeout=10)
    # the task succeeded (it ran the job); its result says how the job ended
    assert results == {failed["id"]: "Failed", done["id"]: "Completed"}
