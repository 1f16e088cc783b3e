"""Runbooks use assets through their job token; fetched secrets are masked in their output."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

SECRET = "hunter2-is-not-a-password"


@pytest.fixture
def assets(api):
    api.post("/api/v1/variables", json={"name": "Plain", "value": {"n": 1}})
    api.post("/api/v1/variables", json={"name": "Hidden", "value": SECRET, "is_encrypted": True})
    api.post("/api/v1/variables", json={"name": "Counter", "value": 0})
    api.post("/api/v1/credentials", json={"name": "Db", "username": "app", "password": SECRET})
    api.post("/api/v1/connection-types", json={"name": "Svc", "fields": [
        {"name": "Url"}, {"name": "Key", "is_encrypted": True}]})
    api.post("/api/v1/connections", json={"name": "Prod", "connection_type": "Svc",
                                          "values": {"Url": "https://x", "Key": SECRET}})


def _records(api, job_id):
    return [(r["stream"], r["text"]) for r in api.records(job_id)]


def test_azure_style_python_runbook_runs_unmodified(api, worker, assets):
    content = (
        "import automationassets\n"
        "from automationassets import AutomationAssetNotFound\n"
        "print(automationassets.get_automation_variable('Plain'))\n"
        "cred = automationassets.get_automation_credential('Db')\n"
        "print(cred['username'], cred['password'])\n"
        "conn = automationassets.get_automation_connection('Prod')\n"
        "print(conn['Url'], conn['Key'])\n"
        "print('hidden:', automationassets.get_automation_variable('Hidden'))\n"
        "automationassets.set_automation_variable('Counter', 41 + 1)\n"
        "print('len', len(cred['password']))\n")
    job = api.run(content)
    assert job["status"] == "Completed", job
    out = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)
    assert out == ("{'n': 1}\napp ***\nhttps://x ***\nhidden: ***\n"
                   f"len {len(SECRET)}\n")
    assert api.get("/api/v1/variables/Counter").get_json()["value"] == 42


def test_secret_masked_in_every_stream_and_the_exception(api, worker, assets):
    content = (
        "import sys, smarunbook\n"
        "p = smarunbook.get_automation_credential('Db')['password']\n"
        "smarunbook.write_warning('warn ' + p)\n"
        "print('err ' + p, file=sys.stderr, flush=True)\n"
        "smarunbook.output({'secret': p})\n"
        "raise RuntimeError('failed with ' + p)\n")
    job = api.run(content)
    assert job["status"] == "Failed"
    assert SECRET not in job["exception"] and "failed with ***" in job["exception"]
    records = api.records(job["id"])
    assert records and all(SECRET not in (r["text"] + str(r["value"])) for r in records)
    assert ("Warning", "warn ***") in _records(api, job["id"])
    typed = [r for r in records if r["value"] is not None]
    assert typed[0]["value"] == {"secret": "***"}
    assert SECRET not in worker.log_path.read_text(errors="replace")  # nor in the worker's log


def test_missing_asset_is_a_clear_error(api, worker):
    job = api.run("import automationassets\nautomationassets.get_automation_variable('Nope')\n")
    assert job["status"] == "Failed"
    assert "AutomationAssetNotFound: Variable 'Nope' not found." in job["exception"]


def test_bash_asset_functions(api, worker, assets):
    content = ('echo "plain=$(get_automation_variable Plain)"\n'
               'echo "user=$(get_automation_credential Db username)"\n'
               'pw=$(get_automation_credential Db password)\n'
               'echo "pw=$pw"\n'
               'echo "key=$(get_automation_connection Prod Key)"\n'
               'set_automation_variable Counter 7\n'
               'get_automation_variable Missing || echo "missing exit $?"\n')
    job = api.run(content, runbook_type="bash")
    assert job["status"] == "Completed", job
    out = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()
    assert out == ['plain={"n": 1}', "user=app", "pw=***", "key=***", "missing exit 3"]
    assert api.get("/api/v1/variables/Counter").get_json()["value"] == 7
    errors = [t for s, t in _records(api, job["id"]) if s == "Error"]
    assert any("Variable 'Missing' not found" in e for e in errors)


def test_job_token_is_scoped_and_dies_with_the_job(api, worker, assets, services):
    content = (
        "import json, os, urllib.request, urllib.error\n"
        "url, token = os.environ['SMA_API_URL'], os.environ['SMA_JOB_TOKEN']\n"
        "def get(path):\n"
        "    req = urllib.request.Request(url + path, headers={'Authorization': 'Bearer ' + token})\n"
        "    try:\n"
        "        return urllib.request.urlopen(req).status\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        return exc.code\n"
        "print(get('/api/v1/runtime/variables/Plain'), get('/api/v1/runbooks'),\n"
        "      get('/api/v1/variables'), get('/api/v1/jobs'))\n"
        "print(token)\n")
    job = api.run(content)
    assert job["status"] == "Completed", job
    lines = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()
    assert lines[0] == "200 403 403 403"
    token = lines[1]
    import requests

    after = requests.get(f"{services['api_url']}/api/v1/runtime/variables/Plain",
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert after.status_code == 401  # the job has ended: its token is no longer valid


def _runas_pfx(password: bytes):
    """A self-signed RSA certificate and its key, as a PFX protected by `password`."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AzureRunAsCertificate")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    pfx = pkcs12.serialize_key_and_certificates(
        b"runas", key, cert, None, serialization.BestAvailableEncryption(password))
    return cert, pfx


def test_certificate_reaches_a_job_with_its_key_as_azure_gives_it(api, worker):
    """A PFX imported without `exportable` (the default) reaches the job as Azure gives it
    to a runbook: PKCS#12 with the private key and no password, which the job signs with."""
    import base64
    import shutil
    import subprocess

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    cert, pfx = _runas_pfx(b"pfx-pass")
    made = api.post("/api/v1/certificates", json={
        "name": "AzureRunAsCertificate", "password": "pfx-pass",
        "data": base64.b64encode(pfx).decode()})
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["exportable"] is False
    public = cert.public_bytes(serialization.Encoding.PEM)
    api.post("/api/v1/certificates", json={"name": "PublicOnly",
                                           "data": base64.b64encode(public).decode()})
    content = (
        "import base64, automationassets\n"
        "from cryptography import x509\n"
        "from cryptography.hazmat.primitives import hashes\n"
        "from cryptography.hazmat.primitives.asymmetric import padding\n"
        "from cryptography.hazmat.primitives.serialization import pkcs12\n"
        "blob = automationassets.get_automation_certificate('AzureRunAsCertificate')\n"
        "key, cert, _ = pkcs12.load_key_and_certificates(blob, None)\n"
        "print(cert.fingerprint(hashes.SHA1()).hex().upper())\n"
        "print(base64.b64encode(key.sign(b'sma', padding.PKCS1v15(), hashes.SHA256()))"
        ".decode())\n"
        "print(base64.b64encode(blob).decode())\n"
        "der = automationassets.get_automation_certificate('PublicOnly')\n"
        "print(x509.load_der_x509_certificate(der).serial_number)\n")
    job = api.run(content)
    assert job["status"] == "Completed", job
    thumbprint, signature, blob, serial = api.get(
        f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()
    assert thumbprint == made.get_json()["thumbprint"]
    cert.public_key().verify(base64.b64decode(signature), b"sma", padding.PKCS1v15(),
                             hashes.SHA256())  # signed with the very key imported
    assert serial == "7"  # the certificate alone comes as DER
    if shutil.which("openssl"):
        # what pyOpenSSL's load_pkcs12(blob) called: PKCS12_parse with no password
        opened = subprocess.run(["openssl", "pkcs12", "-nodes", "-passin", "pass:"],
                                input=base64.b64decode(blob), capture_output=True,
                                timeout=30)
        assert opened.returncode == 0, opened.stderr
        assert b"PRIVATE KEY-----" in opened.stdout


def test_missing_asset_is_a_lookup_error_on_get_and_set(api, worker):
    content = (
        "import automationassets\n"
        "try:\n"
        "    automationassets.set_automation_variable('Missing', 1)\n"
        "except LookupError as exc:\n"
        "    print('set:', type(exc).__name__, exc)\n"
        "try:\n"
        "    automationassets.get_automation_certificate('Missing')\n"
        "except automationassets.AutomationAssetNotFound as exc:\n"
        "    print('get:', isinstance(exc, LookupError), exc)\n"
        "print(automationassets.AutomationAssetException is "
        "automationassets.AutomationAssetError)\n")
    job = api.run(content)
    assert job["status"] == "Completed", job
    out = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)
    assert out == ("set: AutomationAssetNotFound Variable 'Missing' not found.\n"
                   "get: True Certificate 'Missing' not found.\n"
                   "True\n")
    assert api.get("/api/v1/variables/Missing").status_code == 404  # nothing was made
