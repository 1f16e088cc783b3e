"""`sma up --tls-cert/--tls-key` serves HTTPS, and jobs call back over it."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
import requests

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
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "smacli.main", "up", "--data-dir",
                           str(tmp_path), "--tls-cert", str(tmp_path / "missing.pem")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--tls-cert and --tls-key go together" in proc.stderr
