"""`sma up --tls-cert/--tls-key` serves HTTPS, and jobs call back over it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
from pathlib import Path

import pytest
import requests

from smaworker.jobsroot import jobs_root_for
from tests.test_sandbox import needs_job_user
from tests.test_sma_up import Up

pytestmark = pytest.mark.e2e


def _self_signed(folder):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_end_to_end(tmp_path):
    cert, key = _self_signed(tmp_path)
    up = Up(tmp_path / "data", extra=["--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
        up.wait_for("Press Ctrl-C")
        url = f"https://127.0.0.1:{up.port}"
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify (requests#3829)
        s.verify = str(cert)
        s.headers["Authorization"] = f"Bearer {token}"
        assert s.get(f"{url}/health").json() == {"status": "ok"}
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/health", timeout=10)  # not trusted without the cert
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{up.port}/health", timeout=10)
        s.post(f"{url}/api/v1/variables", json={"name": "greeting", "value": "over TLS"})
        s.post(f"{url}/api/v1/runbooks", json={
            "name": "tls", "runbook_type": "python",
            "content": "import automationassets\n"
                       "print(automationassets.get_automation_variable('greeting'))\n"})
        s.post(f"{url}/api/v1/runbooks/tls/publish")
        job = s.post(f"{url}/api/v1/runbooks/tls/start", json={"wait": 60}).json()
        assert job["status"] == "Completed", job
        assert s.get(f"{url}/api/v1/jobs/{job['id']}/output").text == "over TLS\n"
        assert up.interrupt() == 0
    finally:
        up.kill()


def test_tls_options_must_go_together(tmp_path):
    import sys

    proc = subprocess.run([sys.executable, "-m", "smacli.main", "up", "--data-dir",
                           str(tmp_path), "--tls-cert", str(tmp_path / "missing.pem")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--tls-cert and --tls-key go together" in proc.stderr


def test_a_combined_certificate_and_key_file_never_reaches_jobs(tmp_path, job_tmp,
                                                                monkeypatch):
    cert, key = _self_signed(tmp_path)
    combined = tmp_path / "combined.pem"  # in a folder the job's user cannot enter
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    combined.chmod(0o600)
    monkeypatch.setenv("TMPDIR", str(job_tmp))  # the host's shared job folder, for this test
    up = Up(tmp_path / "data", extra=["--tls-cert", str(combined), "--tls-key", str(combined)])
    shared = job_tmp / jobs_root_for(tmp_path / "data").name / "shared"
    try:
        token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
        up.wait_for("Press Ctrl-C")
        url = f"https://127.0.0.1:{up.port}"
        s = requests.Session()
        s.trust_env = False
        s.verify = str(cert)
        s.headers["Authorization"] = f"Bearer {token}"
        s.post(f"{url}/api/v1/variables", json={"name": "greeting", "value": "verified"})
        s.post(f"{url}/api/v1/runbooks", json={
            "name": "ca", "runbook_type": "python",
            "content": "import os, automationassets\n"
                       "print(os.environ['SMA_API_CA_FILE'])\n"
                       "print(automationassets.get_automation_variable('greeting'))\n"})
        s.post(f"{url}/api/v1/runbooks/ca/publish")
        job = s.post(f"{url}/api/v1/runbooks/ca/start", json={"wait": 60}).json()
        assert job["status"] == "Completed", job
        path, greeting = s.get(f"{url}/api/v1/jobs/{job['id']}/output").text.split()
        assert greeting == "verified"  # the job verified the service's certificate
        copy = Path(path)
        assert copy.parent == shared
        assert copy.read_bytes() == cert.read_bytes()  # the certificate, and nothing else
        assert oct(copy.stat().st_mode & 0o777) == "0o644"
        assert up.interrupt() == 0
        assert not copy.exists()  # its worker removed it when it stopped
        assert not [p for p in shared.iterdir() if p.name.endswith(".pem")]
    finally:
        up.kill()


@needs_job_user
def test_a_worker_sweeps_stale_copies_and_wants_a_certificate(processes, services, tmp_path,
                                                                job_tmp):
    cert, key = _self_signed(tmp_path)
    shared = job_tmp / jobs_root_for(Path(services["env"]["SMA_DATA_DIR"])).name / "shared"
    shared.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=10)
    dead = shared / f"{gone.pid}-ca-0123456789abcdef.pem"  # of a worker killed with -9
    dead.write_bytes(cert.read_bytes())
    keyed = shared / "file-0123456789abcdef.pem"  # as versions before this one left them
    keyed.write_bytes(cert.read_bytes() + key.read_bytes())
    plain = shared / "file-fedcba9876543210.pem"
    plain.write_bytes(cert.read_bytes())
    with pytest.raises(RuntimeError, match=f"SMA_API_CA_FILE: {key} holds no PEM certificate"):
        processes.worker("ca-check", env={"TMPDIR": str(job_tmp), "SMA_API_CA_FILE": str(key)})
    assert not dead.exists() and not keyed.exists()
    assert plain.exists()  # an older worker still running may hand it to its jobs
