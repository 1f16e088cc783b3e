"""Live job records as server-sent events, resumable with Last-Event-ID."""

from __future__ import annotations

import json

import requests

SLOW = ("import time\n"
        "print('one', flush=True)\n"
        "time.sleep(1.5)\n"
        "print('two', flush=True)\n")


def _read_events(resp):
    """(event, id, data) tuples as they arrive."""
    event, event_id, data = None, None, []
    for raw in resp.iter_lines(decode_unicode=True):
        if raw == "":
            if event:
                yield event, event_id, json.loads("\n".join(data))
            event, event_id, data = None, None, []
        elif raw.startswith("event: "):
            event = raw[7:]
        elif raw.startswith("id: "):
            event_id = int(raw[4:])
        elif raw.startswith("data: "):
            data.append(raw[6:])


def test_events_stream_live_then_status(api, services, worker):
    rb = api.create_runbook(content=SLOW)
    job = api.start(rb["name"])
    url = f"{services['api_url']}/api/v1/jobs/{job['id']}/events"
    seen = []
    with requests.get(url, headers=api.headers, stream=True, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for event, event_id, data in _read_events(resp):
            if event == "record" and data["text"] == "one":
                # live: the job has not finished when its first line arrives
                assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "Running"
            seen.append((event, event_id, data))
    records = [d["text"] for e, _, d in seen if e == "record"]
    assert records == ["one", "two"]
    assert seen[-1][0] == "status" and seen[-1][2]["status"] == "Completed"
    ids = [i for e, i, _ in seen if e == "record"]
    assert ids == sorted(ids)
    # resume after the first record: only what follows
    with requests.get(url, headers={**api.headers, "Last-Event-ID": str(ids[0])},
                      stream=True, timeout=30) as resp:
        again = list(_read_events(resp))
    assert [d["text"] for e, _, d in again if e == "record"] == ["two"]
    assert again[-1][0] == "status"


def test_events_errors(api, client):
    assert client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000/events",
                      headers=api.headers).status_code == 404
    rb = api.create_runbook()
    job = api.start(rb["name"], worker_group="nobody")
    bad = client.get(f"/api/v1/jobs/{job['id']}/events",
                     headers={**api.headers, "Last-Event-ID": "x"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.get_json()["message"]
    # a job that does not end: the stream ends at its timeout, nothing lost
    quick = client.get(f"/api/v1/jobs/{job['id']}/events?timeout=0.5", headers=api.headers)
    assert quick.status_code == 200 and "event: status" not in quick.get_data(as_text=True)


def test_followers_of_one_job_share_its_feed(api, services, worker):
    """Five followers of a job: one feed in the web process reads for all of them, and each
    gets every record in order and the final status."""
    import threading
    import uuid

    rb = api.create_runbook(content=SLOW)
    job = api.start(rb["name"])
    url = f"{services['api_url']}/api/v1/jobs/{job['id']}/events"
    hub = services["web_app"].extensions["sma_live"]
    first = threading.Barrier(6)
    results: list[list] = []

    def follow() -> None:
        seen = []
        with requests.get(url, headers=api.headers, stream=True, timeout=30) as resp:
            for event, _, data in _read_events(resp):
                seen.append((event, data))
                if event == "record" and data["text"] == "one":
                    first.wait(20)
        results.append(seen)

    threads = [threading.Thread(target=follow) for _ in range(5)]
    for thread in threads:
        thread.start()
    first.wait(20)  # all five have the first line, the job runs on
    feed = hub.feeds[uuid.UUID(job["id"])]
    assert feed.followers == 5
    for thread in threads:
        thread.join(30)
    assert len(results) == 5
    for seen in results:
        assert [d["text"] for e, d in seen if e == "record"] == ["one", "two"]
        assert seen[-1][0] == "status" and seen[-1][1]["status"] == "Completed"


def test_followers_poll_without_redis(api, settings, worker):
    """A web process that cannot reach Redis still streams every record (it polls)."""
    from smacommon.embedded_redis import free_port
    from smaweb import create_app

    rb = api.create_runbook(content=SLOW)
    job = api.start(rb["name"])
    lost = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    client = create_app({"TESTING": True, "SMA_SETTINGS": lost}).test_client()
    body = client.get(f"/api/v1/jobs/{job['id']}/events", headers=api.headers).get_data(
        as_text=True)
    events = [block for block in body.split("\n\n") if "event: record" in block]
    assert ['"one"' in events[0], '"two"' in events[1]] == [True, True] and len(events) == 2
    assert "event: status" in body and '"Completed"' in body
