"""Assets through the REST API: secrets go in, never come out, and are encrypted at rest."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from smacommon.db import get_engine

SECRET = "s3cr3t-Pa55w0rd!"


def _all_bodies(responses) -> str:
    return "\n".join(r.get_data(as_text=True) for r in responses)


def test_variables_plain_and_encrypted(api):
    r1 = api.post("/api/v1/variables", json={"name": "plain", "value": {"a": [1, 2]}})
    assert r1.status_code == 201 and r1.get_json()["value"] == {"a": [1, 2]}
    r2 = api.post("/api/v1/variables", json={"name": "hidden", "value": SECRET,
                                             "is_encrypted": True})
    assert r2.status_code == 201
    assert "value" not in r2.get_json() and r2.get_json()["is_encrypted"] is True
    r3 = api.get("/api/v1/variables/hidden")
    r4 = api.get("/api/v1/variables")
    r5 = api.patch("/api/v1/variables/hidden", json={"value": SECRET + "2"})
    assert [v["name"] for v in r4.get_json()["items"]] == ["hidden", "plain"]
    assert SECRET not in _all_bodies([r2, r3, r4, r5])
    r6 = api.patch("/api/v1/variables/plain", json={"value": 5})
    assert r6.get_json()["value"] == 5
    unset = api.patch("/api/v1/variables/hidden", json={"is_encrypted": False})
    assert unset.status_code == 400
    assert api.delete("/api/v1/variables/plain").status_code == 204
    assert api.get("/api/v1/variables/plain").status_code == 404


def test_credentials_password_is_write_only(api):
    r1 = api.post("/api/v1/credentials", json={"name": "db", "username": "app",
                                               "password": SECRET})
    assert r1.status_code == 201 and r1.get_json()["username"] == "app"
    r2 = api.get("/api/v1/credentials/db")
    r3 = api.get("/api/v1/credentials")
    r4 = api.patch("/api/v1/credentials/db", json={"password": SECRET + "x"})
    assert SECRET not in _all_bodies([r1, r2, r3, r4])
    assert "password" not in r2.get_json()


def test_connections_encrypted_fields_are_write_only(api):
    r1 = api.post("/api/v1/connection-types", json={"name": "Azure", "fields": [
        {"name": "TenantId"}, {"name": "Secret", "is_encrypted": True},
        {"name": "Region", "is_optional": True}]})
    assert r1.status_code == 201
    r2 = api.post("/api/v1/connections", json={"name": "prod", "connection_type": "Azure",
                                               "values": {"TenantId": "t-1", "Secret": SECRET}})
    assert r2.status_code == 201, r2.get_json()
    body = r2.get_json()
    assert body["values"] == {"TenantId": "t-1"} and body["encrypted_fields"] == ["Secret"]
    r3 = api.patch("/api/v1/connections/prod", json={"values": {"Region": "eu"}})
    assert r3.get_json()["values"] == {"TenantId": "t-1", "Region": "eu"}
    assert SECRET not in _all_bodies([r2, r3, api.get("/api/v1/connections")])
    missing = api.post("/api/v1/connections", json={"name": "bad", "connection_type": "Azure",
                                                    "values": {"Secret": "x"}})
    assert missing.status_code == 400 and "TenantId" in missing.get_json()["message"]
    unknown = api.post("/api/v1/connections", json={
        "name": "bad", "connection_type": "Azure", "values": {"TenantId": "t", "Colour": 1}})
    assert unknown.status_code == 400 and "Colour" in unknown.get_json()["message"]
    no_type = api.post("/api/v1/connections", json={"name": "bad", "connection_type": "Nope",
                                                    "values": {}})
    assert no_type.status_code == 404
    in_use = api.delete("/api/v1/connection-types/Azure")
    assert in_use.status_code == 409


def _self_signed(tmp_path: Path, password: bytes | None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sma-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    pfx = pkcs12.serialize_key_and_certificates(b"t", key, cert, None, enc)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return cert, pfx, pem


def test_certificates_pfx_and_pem(api, tmp_path):
    cert, pfx, pem = _self_signed(tmp_path, b"pfxpass")
    r1 = api.post("/api/v1/certificates", json={
        "name": "web", "data": base64.b64encode(pfx).decode(), "password": "pfxpass",
        "exportable": True})
    assert r1.status_code == 201, r1.get_json()
    body = r1.get_json()
    from cryptography.hazmat.primitives import hashes

    assert body["thumbprint"] == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert body["subject"] == "CN=sma-test" and body["has_private_key"] is True
    r2 = api.post("/api/v1/certificates", json={"name": "pub",
                                                "data": base64.b64encode(pem).decode()})
    assert r2.status_code == 201 and r2.get_json()["has_private_key"] is False
    wrong = api.post("/api/v1/certificates", json={
        "name": "x", "data": base64.b64encode(pfx).decode(), "password": "nope"})
    assert wrong.status_code == 400 and "password" in wrong.get_json()["message"]
    garbage = api.post("/api/v1/certificates", json={"name": "y", "data": "!!!"})
    assert garbage.status_code == 400 and "base64" in garbage.get_json()["message"]
    assert "data" not in api.get("/api/v1/certificates/web").get_json()


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/variables", {"name": "bad/name", "value": 1}, "name"),
    ("/api/v1/variables", {"value": 1}, "name"),
    ("/api/v1/variables", {"name": "v", "value": 1, "secret": True}, "secret"),
    ("/api/v1/credentials", {"name": "c", "username": "u"}, "password"),
    ("/api/v1/connection-types", {"name": "t", "fields": []}, "fields"),
    ("/api/v1/connection-types", {"name": "t", "fields": [{"name": "a b"}]}, "fields"),
    ("/api/v1/connection-types", {"name": "t", "fields": [{"name": "a"}, {"name": "a"}]},
     "fields"),
])
def test_bad_asset_input_is_400(api, path, body, field):
    resp = api.post(path, json=body)
    assert resp.status_code == 400, resp.get_json()
    assert field in json.dumps(resp.get_json())


def test_duplicate_asset_is_409(api):
    api.post("/api/v1/variables", json={"name": "dup", "value": 1})
    resp = api.post("/api/v1/variables", json={"name": "dup", "value": 2})
    assert resp.status_code == 409 and "already exists" in resp.get_json()["message"]


def test_unknown_asset_is_404(api):
    for kind in ("variables", "credentials", "connections", "connection-types", "certificates"):
        resp = api.get(f"/api/v1/{kind}/ghost")
        assert resp.status_code == 404 and "ghost" in resp.get_json()["message"]


def test_runtime_endpoints_refuse_user_tokens(api):
    api.post("/api/v1/credentials", json={"name": "db", "username": "u", "password": SECRET})
    resp = api.get("/api/v1/runtime/credentials/db")
    assert resp.status_code == 403
    assert SECRET not in resp.get_data(as_text=True)


def test_no_secret_in_clear_in_the_database(api, services):
    api.post("/api/v1/variables", json={"name": "v", "value": SECRET, "is_encrypted": True})
    api.post("/api/v1/credentials", json={"name": "c", "username": "u", "password": SECRET})
    api.post("/api/v1/connection-types", json={"name": "T", "fields": [
        {"name": "Key", "is_encrypted": True}]})
    api.post("/api/v1/connections", json={"name": "k", "connection_type": "T",
                                          "values": {"Key": SECRET}})
    engine = get_engine(services["database_url"])
    if engine.dialect.name == "sqlite":
        raw = Path(engine.url.database).read_bytes()  # the file and its write-ahead log
        wal = Path(engine.url.database + "-wal")
        raw += wal.read_bytes() if wal.exists() else b""
        assert SECRET.encode() not in raw
    else:
        with engine.connect() as conn:
            dump = "".join(str(row) for table in ("variables", "credentials", "connections")
                           for row in conn.execute(text(f"SELECT * FROM {table}")))
        assert SECRET not in dump
