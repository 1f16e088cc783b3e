"""A secret given as a fixed parameter of a schedule link or a webhook is sealed at rest and
shown as *** to every reader (API, portal, CLI, audit); the job beat or the webhook starts
gets the real value, sealed for the job and masked in its output. Real beat, real worker,
real webhook calls, the rows read with SQL."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.models import JobSchedule, ScheduleFire, Webhook
from tests.test_cli import cli  # noqa: F401 - the fixture
from tests.test_portal import sign_in

pytestmark = pytest.mark.e2e

SECRET_MAIN = ("import hashlib\n"
               "from smarunbook import Secret\n"
               "def main(pw: Secret, label: str = 'x'):\n"
               "    print('got', pw, label)\n"
               "    print('sha', hashlib.sha256(pw.encode()).hexdigest())\n")
# the same runbook, where pw is no longer declared secret
PLAIN_MAIN = SECRET_MAIN.replace("pw: Secret", "pw: str")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _secret() -> str:
    return "fixed-s3cret-" + uuid.uuid4().hex[:10]


def _rows(services, table: str) -> str:
    """Every row of `table` as the database holds it, every column as text."""
    with get_engine(services["database_url"]).connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {table}")).mappings().all()
    return json.dumps([{k: str(v) for k, v in row.items()} for row in rows])


def _job_row(services, job_id: str) -> str:
    with get_engine(services["database_url"]).connect() as conn:
        row = conn.execute(text("SELECT * FROM jobs WHERE id = :id OR id = :hex"),
                           {"id": job_id, "hex": uuid.UUID(job_id).hex}).mappings().one()
    return json.dumps({k: str(v) for k, v in row.items()})


def _output(api, job_id: str) -> list[str]:
    return api.get(f"/api/v1/jobs/{job_id}/output").get_data(as_text=True).splitlines()


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _schedule(api, **fields) -> dict:
    resp = api.post("/api/v1/schedules", json={"name": _name("s"), "frequency": "Day",
                                               **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _link(api, schedule: str, runbook: str, parameters: dict, **fields) -> dict:
    resp = api.post(f"/api/v1/schedules/{schedule}/runbooks",
                    json={"runbook": runbook, "parameters": parameters, **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _hook(api, runbook: str, parameters: dict) -> dict:
    resp = api.post("/api/v1/webhooks", json={"name": _name("wh"), "runbook": runbook,
                                              "parameters": parameters})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _invoke(services, hook: dict) -> str:
    url = services["api_url"] + "/api/v1/webhooks/invoke/" + hook["uri"].rsplit("/", 1)[1]
    resp = requests.post(url, json={"ref": "main"}, timeout=30)
    assert resp.status_code == 202, resp.text
    return resp.json()["JobIds"][0]


def _jobs_of(api, runbook: str, count: int = 1, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = api.get(f"/api/v1/jobs?runbook={runbook}").get_json()["items"]
        if len(items) >= count:
            return items
        assert time.monotonic() < deadline, f"no job of {runbook} started"
        time.sleep(0.1)


def _assert_job_got(api, services, job_id: str, secret: str, label: str = "L") -> None:
    """The job completed with the real value, which it holds sealed and prints masked."""
    job = api.wait(job_id)
    assert job["status"] == "Completed", job
    shown = {k: v for k, v in job["parameters"].items() if k != "WEBHOOKDATA"}
    assert shown == {"pw": "***", "label": label}
    assert _output(api, job_id) == [f"got *** {label}", f"sha {_sha(secret)}"]
    row = _job_row(services, job_id)
    assert secret not in row and '"sealed_parameters": "None"' not in row


def test_schedule_link_secret_is_sealed_shown_masked_and_fired_by_beat(
        api, app, services, processes, worker, cli):  # noqa: F811
    secret = _secret()
    rb = api.create_runbook(content=SECRET_MAIN)
    schedule = _schedule(api, frequency="OneTime",
                         start_time=(datetime.now(UTC) + timedelta(seconds=3)).isoformat())
    link = _link(api, schedule["name"], rb["name"], {"pw": secret, "label": "L"})
    assert link["parameters"] == {"pw": "***", "label": "L"}
    stored = _rows(services, "job_schedules")
    assert secret not in stored and '"sealed_parameters": "None"' not in stored
    with get_engine(services["database_url"]).connect() as conn:
        kept = conn.execute(text("SELECT parameters FROM job_schedules")).scalar_one()
    # a non-secret value is kept as it is
    assert (json.loads(kept) if isinstance(kept, str) else kept) == {"pw": "***", "label": "L"}
    # every reader sees ***: the API, the portal, the CLI
    seen = (api.get(f"/api/v1/schedules/{schedule['name']}/runbooks").get_data(as_text=True)
            + api.get(f"/api/v1/runbooks/{rb['name']}/schedules").get_data(as_text=True))
    assert secret not in seen and seen.count('"pw": "***"') + seen.count('"pw":"***"') == 2
    browser = app.test_client()
    sign_in(browser)
    page = browser.get(f"/schedules/{schedule['name']}").get_data(as_text=True)
    assert secret not in page and "***" in page
    shown = cli("schedule", "show", schedule["name"], "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["runbooks"][0]["parameters"] == {"pw": "***", "label": "L"}
    processes.beat()
    (job,) = _jobs_of(api, rb["name"])
    assert job["started_by"] == f"schedule:{schedule['id']}"
    _assert_job_got(api, services, job["id"], secret)
    audit = api.get("/api/v1/audit?limit=100").get_data(as_text=True)
    assert "schedule.link" in audit and secret not in audit


def test_cli_link_with_a_secret_parameter(cli, api, services):  # noqa: F811
    secret = _secret()
    rb = api.create_runbook(content=SECRET_MAIN)
    schedule = _schedule(api, start_time="2030-01-01T06:00:00Z")
    made = cli("schedule", "link", schedule["name"], rb["name"], "-p", f"pw={secret}",
               "-p", "label=L", "-o", "json")
    assert made.returncode == 0, made.stderr
    assert secret not in made.stdout + made.stderr
    assert json.loads(made.stdout)["parameters"] == {"pw": "***", "label": "L"}
    assert secret not in _rows(services, "job_schedules")


def test_webhook_secret_is_sealed_shown_masked_and_reaches_the_job(api, app, services, worker):
    secret = _secret()
    rb = api.create_runbook(content=SECRET_MAIN)
    hook = _hook(api, rb["name"], {"pw": secret, "label": "L"})
    assert hook["parameters"] == {"pw": "***", "label": "L"}
    stored = _rows(services, "webhooks")
    assert secret not in stored and '"sealed_parameters": "None"' not in stored
    seen = (api.get("/api/v1/webhooks").get_data(as_text=True)
            + api.get(f"/api/v1/webhooks/{hook['name']}").get_data(as_text=True))
    assert secret not in seen and '"***"' in seen
    browser = app.test_client()
    sign_in(browser)
    assert secret not in browser.get("/webhooks").get_data(as_text=True)
    _assert_job_got(api, services, _invoke(services, hook), secret)
    # parameters sent back as they were read keep the sealed value; a non-secret one changes
    patched = api.patch(f"/api/v1/webhooks/{hook['name']}",
                        json={"parameters": {"pw": "***", "label": "M"}})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["parameters"] == {"pw": "***", "label": "M"}
    _assert_job_got(api, services, _invoke(services, hook), secret, label="M")
    # a new secret replaces it
    other = _secret()
    api.patch(f"/api/v1/webhooks/{hook['name']}", json={"parameters": {"pw": other, "label": "N"}})
    assert other not in _rows(services, "webhooks") and secret not in _rows(services, "webhooks")
    _assert_job_got(api, services, _invoke(services, hook), other, label="N")
    audit = api.get("/api/v1/audit?limit=100").get_data(as_text=True)
    assert "webhook.update" in audit and secret not in audit and other not in audit


def test_webhook_secret_from_the_portal_form(api, app, services):
    secret = _secret()
    rb = api.create_runbook(content=SECRET_MAIN)
    browser = app.test_client()
    csrf = sign_in(browser)
    name = _name("wh")
    made = browser.post("/webhooks", data={"csrf_token": csrf, "name": name,
                                           "runbook": rb["name"],
                                           "parameters": f"pw={secret}\nlabel=L"})
    assert made.status_code == 200 and "/api/v1/webhooks/invoke/" in made.get_data(as_text=True)
    assert api.get(f"/api/v1/webhooks/{name}").get_json()["parameters"] == \
        {"pw": "***", "label": "L"}
    assert secret not in _rows(services, "webhooks")


def test_republished_runbook_secret_sealed_at_publish_and_never_unsealed(api, services, worker):
    """A value given in clear is sealed when a new version declares it secret; once sealed
    it stays sealed (and its jobs seal it) when a later version no longer does."""
    secret = _secret()
    rb = api.create_runbook(content=PLAIN_MAIN)
    start = datetime.now(UTC) + timedelta(days=1)
    schedule = _schedule(api, frequency="OneTime", start_time=start.isoformat())
    link = _link(api, schedule["name"], rb["name"], {"pw": secret, "label": "L"})
    hook = _hook(api, rb["name"], {"pw": secret, "label": "L"})
    assert link["parameters"]["pw"] == secret == hook["parameters"]["pw"]  # not secret yet
    assert api.put(f"/api/v1/runbooks/{rb['name']}/draft",
                   json={"content": SECRET_MAIN}).status_code == 200
    assert api.post(f"/api/v1/runbooks/{rb['name']}/publish").status_code == 201
    for table in ("job_schedules", "webhooks"):
        assert secret not in _rows(services, table), table
    assert api.get(f"/api/v1/webhooks/{hook['name']}").get_json()["parameters"] == \
        {"pw": "***", "label": "L"}
    assert api.put(f"/api/v1/runbooks/{rb['name']}/draft",
                   json={"content": PLAIN_MAIN}).status_code == 200
    assert api.post(f"/api/v1/runbooks/{rb['name']}/publish").status_code == 201
    assert secret not in _rows(services, "webhooks")
    _assert_job_got(api, services, _invoke(services, hook), secret)
    # the link fires as beat fires it, at its time
    from smacommon.services.schedules import fire_due

    engine = get_engine(services["database_url"])
    assert fire_due(engine, now=start + timedelta(seconds=5)) == 1
    fired = [j for j in _jobs_of(api, rb["name"], count=2)
             if j["started_by"] == f"schedule:{schedule['id']}"]
    _assert_job_got(api, services, fired[0]["id"], secret)


def _write_keys(path, *keys: str) -> None:
    aside = path.with_name(path.name + ".new")
    aside.write_text("\n".join(keys) + "\n")
    aside.chmod(0o600)
    os.replace(aside, path)


def test_key_rotation_reseals_links_and_webhooks_and_they_still_work(
        api, services, settings, worker):
    from cryptography.fernet import Fernet

    from smacommon.crypto import get_crypto
    from smacommon.services.assets import rotate_secrets
    from smacommon.services.audit import Actor
    from smacommon.services.fixed_parameters import sealed_values
    from smacommon.services.schedules import fire_due
    from smacommon.settings import load_settings

    secret = _secret()
    rb = api.create_runbook(content=SECRET_MAIN)
    start = datetime.now(UTC) + timedelta(days=1)
    schedule = _schedule(api, frequency="OneTime", start_time=start.isoformat())
    _link(api, schedule["name"], rb["name"], {"pw": secret, "label": "L"})
    hook = _hook(api, rb["name"], {"pw": secret, "label": "L"})
    engine = get_engine(services["database_url"])
    key_file = settings.data_dir / "encryption.key"
    old_key = key_file.read_text().strip()
    old = get_crypto(load_settings())
    new_key = Fernet.generate_key().decode()
    try:
        # the web service and beat read the key file: first the new key and the old, then,
        # after the rotation, only the new one
        _write_keys(key_file, new_key, old_key)
        rotate_secrets(engine, get_crypto(load_settings()), Actor("cli:ops", "cli", "host-1"))
        _write_keys(key_file, new_key)
        only_new = get_crypto(load_settings())
        with Session(engine) as session:
            items = [session.scalars(select(JobSchedule)).one(),
                     session.scalars(select(Webhook)).one()]
            for item in items:
                assert sealed_values(item, only_new) == {"pw": secret}
                with pytest.raises(Exception, match="cannot be decrypted"):
                    sealed_values(item, old)
        _assert_job_got(api, services, _invoke(services, hook), secret)
        assert fire_due(engine, now=start + timedelta(seconds=5)) == 1
        fired = [j for j in _jobs_of(api, rb["name"], count=2)
                 if j["started_by"] == f"schedule:{schedule['id']}"]
        _assert_job_got(api, services, fired[0]["id"], secret)
    finally:
        _write_keys(key_file, old_key)


def test_secret_the_keys_cannot_open_fails_its_link_alone_and_webhook_says_why(
        api, services, caplog):
    from cryptography.fernet import Fernet

    from smacommon.crypto import Crypto
    from smacommon.services.schedules import fire_due

    rb = api.create_runbook(content=SECRET_MAIN)
    plain = api.create_runbook()
    start = datetime.now(UTC) + timedelta(days=1)
    schedule = _schedule(api, frequency="OneTime", start_time=start.isoformat())
    _link(api, schedule["name"], rb["name"], {"pw": _secret()}, worker_group="nobody-here")
    _link(api, schedule["name"], plain["name"], {}, worker_group="nobody-here")
    hook = _hook(api, rb["name"], {"pw": _secret()})
    # sealed under a key the service does not have (SMA_ENCRYPTION_KEYS changed, no rotation)
    foreign = Crypto([Fernet.generate_key()]).encrypt(json.dumps({"pw": "x"}))
    engine = get_engine(services["database_url"])
    with engine.begin() as conn:
        for model in (JobSchedule, Webhook):
            table = model.__table__
            conn.execute(update(table).where(table.c.sealed_parameters.is_not(None))
                         .values(sealed_parameters=foreign))
    assert fire_due(engine, now=start + timedelta(seconds=5)) == 1
    assert [j["runbook_name"] for j in api.get("/api/v1/jobs").get_json()["items"]] == \
        [plain["name"]]
    assert "cannot be decrypted" in caplog.text
    with Session(engine) as session:  # that fire time is over for the link: no retry loop
        assert len(session.scalars(select(ScheduleFire)).all()) == 2
    url = services["api_url"] + "/api/v1/webhooks/invoke/" + hook["uri"].rsplit("/", 1)[1]
    resp = requests.post(url, json={}, timeout=30)
    assert resp.status_code == 500 and "cannot be decrypted" in resp.json()["message"]
