"""Every secret a job holds is masked whatever its shape, and what a job keeps of a secret
(parameters declared secret, checkpoints) is sealed at rest. Real runbooks on the real worker,
as a hostile or careless runbook author would write them."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest
from sqlalchemy import text

from smacommon.db import get_engine

pytestmark = pytest.mark.e2e

PEM = ("-----BEGIN PRIVATE KEY-----\n"
       "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
       "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
       "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n"
       "ab\n"
       "-----END PRIVATE KEY-----\n")
PEM_LINES = [line for line in PEM.splitlines() if len(line) >= 4]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _secret_variable(api, value) -> str:
    name = _name("secret")
    resp = api.post("/api/v1/variables", json={"name": name, "value": value,
                                               "is_encrypted": True})
    assert resp.status_code == 201, resp.get_json()
    return name


def _stored(api, job_id) -> str:
    """Every record of the job as stored, text and value."""
    return "\n".join(r["text"] + "\t" + json.dumps(r["value"], ensure_ascii=False)
                     for r in api.records(job_id))


def _job_row(services, job_id) -> str:
    """The job's row as the database holds it, every column as text."""
    with get_engine(services["database_url"]).connect() as conn:
        row = conn.execute(text("SELECT * FROM jobs WHERE id = :id OR id = :hex"),
                           {"id": job_id, "hex": uuid.UUID(job_id).hex}).mappings().one()
    return json.dumps({k: str(v) for k, v in row.items()})


# --- masking -------------------------------------------------------------------------------

def test_multi_line_secret_is_masked_line_by_line_on_stdout_and_stderr(api, worker):
    key = _secret_variable(api, PEM)
    two = _secret_variable(api, "first-half\nsecond-half")
    job = api.run(
        "import sys, smarunbook\n"
        f"pem = smarunbook.get_automation_variable({key!r})\n"
        f"pw = smarunbook.get_automation_variable({two!r})\n"
        "print(pem)\n"
        "sys.stderr.write(pem)\n"
        "print('password:', pw)\n"
        "print(pem.replace('\\n', '\\r\\n'))\n"
        "smarunbook.write_warning(pem)\n")
    assert job["status"] == "Completed", job
    stored = _stored(api, job["id"])
    for line in PEM_LINES + ["first-half", "second-half"]:
        assert line not in stored
    texts = [r["text"] for r in api.records(job["id"])]
    assert texts[:6] == ["***"] * 4 + ["ab", "***"]  # a line under 4 characters is left
    assert "password: ***" in texts and "***" in texts


def test_secret_across_the_line_cut_is_masked_on_both_sides(api, worker, settings):
    secret = "Qz7#kP2!vW9@mL4$"
    name = _secret_variable(api, secret)
    cut = settings.max_line_bytes
    job = api.run(
        "import sys, smarunbook\n"
        f"s = smarunbook.get_automation_variable({name!r})\n"
        f"sys.stdout.write('x' * {cut - 7} + s + 'y' * 20 + '\\n')\n"
        f"sys.stderr.write('e' * {cut * 2 - 3} + s + '\\n')\n"
        "sys.stdout.flush(); sys.stderr.flush()\n"
        # written in small pieces, so the cut falls between two reads of the pipe
        f"for part in ['z' * {cut - 10}, s[:5], s[5:], 'tail']:\n"
        "    sys.stdout.write(part); sys.stdout.flush()\n"
        "    import time; time.sleep(0.05)\n"
        "sys.stdout.write('\\n')\n")
    assert job["status"] == "Completed", job
    records = api.records(job["id"])
    joined = "|".join(r["text"] for r in records)
    for i in range(len(secret) - 3):
        assert secret[i:i + 4] not in joined, secret[i:i + 4]
    out = [r["text"] for r in records if r["stream"] == "Output"]
    assert out[0] == "x" * (cut - 7) + "***" and out[1] == "***" + "y" * 20
    assert out[2].endswith("z***") and out[3] == "***tail"
    errors = [r["text"] for r in records if r["stream"] == "Error"]
    assert errors[0] == "e" * cut and errors[1].endswith("***") and errors[2] == "***"


def test_typed_output_holding_the_secret_completes_and_is_masked(api, worker):
    name = _secret_variable(api, "1234")
    job = api.run(
        "import smarunbook\n"
        f"smarunbook.get_automation_variable({name!r})\n"
        "smarunbook.output({'order': 12345, 'id-1234': 'a1234b', 'list': [1234, 5, 1.25],\n"
        "                   'nested': {'1234': True, 'n': None}})\n"
        "smarunbook.output(991234)\n"
        "print('done')\n")
    assert job["status"] == "Completed", job
    typed = [r["value"] for r in api.records(job["id"]) if r["value"] is not None]
    assert typed == [{"order": "***5", "id-***": "a***b", "list": ["***", 5, 1.25],
                      "nested": {"***": True, "n": None}}, "99***"]
    assert "1234" not in _stored(api, job["id"])


def test_non_ascii_secret_in_typed_output_and_json_text(api, worker):
    secret = 'Pä"ßwörd\\ü'
    name = _secret_variable(api, secret)
    job = api.run(
        "import json, smarunbook\n"
        f"s = smarunbook.get_automation_variable({name!r})\n"
        "smarunbook.output({'user': 'bob', 'password': s, s: 1})\n"
        "print(json.dumps({'p': s}))\n"
        "print(json.dumps({'p': s}, ensure_ascii=False))\n"
        "smarunbook.write_warning(json.dumps([s], ensure_ascii=False))\n")
    assert job["status"] == "Completed", job
    stored = _stored(api, job["id"])
    for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                 "ßwörd"):
        assert form not in stored
    typed = [r["value"] for r in api.records(job["id"]) if r["value"] is not None]
    assert typed == [{"user": "bob", "password": "***", "***": 1}]
    texts = [r["text"] for r in api.records(job["id"], stream="Output")]
    assert texts.count('{"p": "***"}') == 2
    assert '{"user": "bob", "password": "***", "***": 1}' in texts


# --- secret parameters ---------------------------------------------------------------------

CHILD = ("import hashlib\n"
         "from smarunbook import Secret\n"
         "def main(pw: Secret, label: str = 'x'):\n"
         "    print('child got', pw, label)\n"
         "    print('sha', hashlib.sha256(pw.encode()).hexdigest())\n")


def test_secret_parameter_of_a_child_is_sealed_hidden_and_masked(api, worker, services):
    secret = "child-s3cret-" + uuid.uuid4().hex[:6]
    api.post("/api/v1/credentials", json={"name": "Db", "username": "app", "password": secret})
    child = api.create_runbook(name=_name("child"), content=CHILD)
    version = api.get(f"/api/v1/runbooks/{child['name']}").get_json()
    assert {"name": "pw", "type": "string", "mandatory": True, "secret": True} in \
        version["published_version"]["parameters"]
    parent = api.run(
        "import smarunbook\n"
        "pw = smarunbook.get_automation_credential('Db')['password']\n"
        f"out = smarunbook.start_runbook({child['name']!r}, {{'pw': pw, 'label': 'L'}},"
        " wait=True)\n"
        "print(out)\n")
    assert parent["status"] == "Completed", parent
    (kid,) = [j for j in api.get(f"/api/v1/jobs?runbook={child['name']}").get_json()["items"]]
    assert kid["parameters"] == {"pw": "***", "label": "L"}
    assert api.get(f"/api/v1/jobs/{kid['id']}").get_json()["parameters"] == \
        {"pw": "***", "label": "L"}
    row = _job_row(services, kid["id"])
    assert secret not in row and '"sealed_parameters": "None"' not in row
    lines = api.get(f"/api/v1/jobs/{kid['id']}/output").get_data(as_text=True).splitlines()
    assert lines == ["child got *** L", "sha " + hashlib.sha256(secret.encode()).hexdigest()]
    assert secret not in _stored(api, parent["id"])


def test_secret_parameter_from_the_api_and_a_bash_declaration(api, worker, services):
    secret = "bash-s3cret-value"
    rb = api.create_runbook(
        content='echo "pw=$pw"\n'
                'case "$(tr "\\0" " " < /proc/$$/cmdline)" in *"$pw"*) echo in-argv;; '
                '*) echo not-in-argv;; esac\n',
        runbook_type="bash",
        parameters=[{"name": "pw", "type": "string", "mandatory": True, "secret": True}])
    job = api.wait(api.start(rb["name"], {"pw": secret})["id"])
    assert job["status"] == "Completed", job
    assert job["parameters"] == {"pw": "***"}
    assert secret not in _job_row(services, job["id"])
    lines = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()
    assert lines == ["pw=***", "not-in-argv"]


def test_secret_parameter_names_in_python(api):
    rb = api.create_runbook(content=(
        "SECRET_PARAMETERS = ['token']\n"
        "def main(token: str, n: int = 1, key: 'Secret | None' = None):\n"
        "    pass\n"))
    declared = api.get(f"/api/v1/runbooks/{rb['name']}").get_json()[
        "published_version"]["parameters"]
    assert declared == [
        {"name": "token", "type": "string", "mandatory": True, "secret": True},
        {"name": "n", "type": "int", "mandatory": False, "default": 1},
        {"name": "key", "type": "string", "mandatory": False, "secret": True, "default": None}]


def test_bad_secret_declaration_is_400(api):
    resp = api.post("/api/v1/runbooks", json={
        "name": _name("rb"), "runbook_type": "bash", "content": "echo\n",
        "parameters": [{"name": "pw", "secret": True, "hidden": True}]})
    assert resp.status_code == 400 and "hidden" in resp.get_json()["message"]


def test_without_the_job_keys_a_job_with_secrets_is_suspended_not_lost(api, services,
                                                                        processes):
    group = f"nokeys{uuid.uuid4().hex[:6]}"
    processes.worker(group, env={"SMA_API_URL": "http://127.0.0.1:9"})  # nothing listens
    rb = api.create_runbook(content=CHILD)
    job = api.start(rb["name"], {"pw": "sealed-value-1"}, worker_group=group)
    done = api.wait(job["id"], timeout=60)
    assert done["status"] == "Suspended", done
    assert "could not get the job's keys" in done["status_reason"]
    assert "sealed-value-1" not in _job_row(services, job["id"])


# --- checkpoints ---------------------------------------------------------------------------

def test_checkpoint_is_sealed_at_rest_and_comes_back_on_resume(api, worker, services):
    token = "tok-" + uuid.uuid4().hex
    rb = api.create_runbook(content=(
        "import time, smarunbook\n"
        "cp = smarunbook.last_checkpoint()\n"
        "if cp:\n"
        "    print('resumed with', cp['token'])\n"
        "else:\n"
        f"    smarunbook.checkpoint({{'token': {token!r}, 'step': 1}})\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"))
    job = api.start(rb["name"])
    deadline = time.monotonic() + 30
    while "ready" not in api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True):
        assert time.monotonic() < deadline, "the job never got ready"
        time.sleep(0.1)
    for _ in range(50):  # the checkpoint goes with the batch of records before it
        row = _job_row(services, job["id"])
        if '"sealed_checkpoint": "None"' not in row:
            break
        time.sleep(0.1)
    assert token not in row
    assert '"checkpoint": "None"' in row or '"checkpoint": "null"' in row  # JSON null
    assert api.post(f"/api/v1/jobs/{job['id']}/suspend").status_code == 202
    suspended = api.wait(job["id"], timeout=15, statuses=("Suspended",))
    assert suspended["has_checkpoint"] is True
    assert token not in _job_row(services, job["id"])
    assert api.post(f"/api/v1/jobs/{job['id']}/resume").status_code == 202
    done = api.wait(job["id"], timeout=30)
    assert done["status"] == "Completed", done
    assert f"resumed with {token}" in api.get(
        f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)
    assert '"sealed_checkpoint": "None"' in _job_row(services, job["id"])


def test_key_rotation_reseals_job_parameters_and_checkpoints(api, services):
    from cryptography.fernet import Fernet
    from sqlalchemy import select, update

    from smacommon.crypto import get_crypto
    from smacommon.models import Job
    from smacommon.sealing import unseal
    from smacommon.services.assets import rotate_secrets
    from smacommon.services.audit import Actor
    from smacommon.settings import load_settings

    rb = api.create_runbook(content=CHILD)
    group = f"idle{uuid.uuid4().hex[:6]}"  # no worker: the jobs stay New
    sealed = api.start(rb["name"], {"pw": "rotate-me-1"}, worker_group=group)["id"]
    legacy = api.start(rb["name"], {"pw": "rotate-me-2"}, worker_group=group)["id"]
    engine = get_engine(services["database_url"])
    with engine.begin() as conn:  # a checkpoint kept in clear before sealing existed
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == uuid.UUID(legacy))
                     .values(checkpoint={"token": "legacy-token"}))
    old = get_crypto(load_settings())
    old_key = (load_settings().data_dir / "encryption.key").read_text().strip()
    new_key = Fernet.generate_key().decode()
    rotate_secrets(engine, get_crypto(load_settings(encryption_keys=f"{new_key},{old_key}")),
                   Actor("cli:ops", "cli", "host-1"))
    only_new = get_crypto(load_settings(encryption_keys=new_key))
    jobs = Job.__table__
    with engine.connect() as conn:
        rows = {str(r.id): r for r in conn.execute(select(jobs).where(
            jobs.c.id.in_([uuid.UUID(sealed), uuid.UUID(legacy)])))}
    first, second = rows[sealed], rows[legacy]
    assert unseal(only_new.for_job(first.id), first.sealed_parameters) == {"pw": "rotate-me-1"}
    assert unseal(only_new.for_job(second.id), second.sealed_checkpoint) == \
        {"token": "legacy-token"}
    assert second.checkpoint is None and "legacy-token" not in _job_row(services, legacy)
    with pytest.raises(Exception, match="cannot be decrypted"):
        unseal(old.for_job(first.id), first.sealed_parameters)


def test_job_keys_only_for_a_running_job_and_only_its_own(api, client, services):
    from smacommon.crypto import get_crypto
    from smacommon.sealing import seal, unseal
    from smacommon.settings import load_settings

    assert api.get("/api/v1/runtime/job-keys").status_code == 403  # not for people
    assert client.get("/api/v1/runtime/job-keys").status_code == 401
    crypto = get_crypto(load_settings())
    first, second = uuid.uuid4(), uuid.uuid4()
    token = seal(crypto.for_job(first), {"pw": "x"})
    assert unseal(crypto.for_job(first), token) == {"pw": "x"}
    with pytest.raises(Exception, match="cannot be decrypted"):
        unseal(crypto.for_job(second), token)
