"""Sign-in with a directory over TLS (ldaps:// and StartTLS), against a real slapd with a
throwaway CA (tests/certs.py): trusted certificates work; an untrusted one, one for another
host, StartTLS asked of a directory without TLS, a CA file sma cannot read are each refused
with a 503 saying what an admin must fix (never a 500, never a session), details logged."""

from __future__ import annotations

import logging

import pytest

from smacommon.errors import ConfigurationError
from smacommon.settings import load_settings
from tests.certs import make_ca, make_server_cert
from tests.slapd import ADMINS, PASSWORDS, ldap_settings, start_slapd  # noqa: F401

SIGN_IN = "/api/v1/sessions"
ROLES = {ADMINS: "admin"}


def client_for(server, **overrides):
    from smaweb import create_app

    settings = load_settings(**ldap_settings(server, role_mapping=ROLES, **overrides))
    return create_app({"TESTING": True, "SMA_SETTINGS": settings}).test_client()


def sign_in(client, username="alice"):
    return client.post(SIGN_IN, json={"username": username, "password": PASSWORDS[username]})


def assert_refused(answer, *phrases):
    """A clear 503: the phrases in its message, no session handed out."""
    body = answer.get_json()
    assert answer.status_code == 503, (answer.status_code, body)
    for phrase in phrases:
        assert phrase in body["message"], body["message"]
    assert "token" not in body


@pytest.fixture
def certs(tmp_path):
    folder = tmp_path / "certs"
    ca = make_ca(folder)
    return ca, make_server_cert(folder, ca)  # localhost and 127.0.0.1


@pytest.fixture
def tls_slapd(start_slapd, certs):  # noqa: F811
    return start_slapd(certs[1])


def test_ldaps_with_the_ca_file_signs_in(tls_slapd, certs):
    ca_file = str(certs[0].cert_file)
    for url in (tls_slapd.ldaps_url, tls_slapd.ldaps_url.replace("127.0.0.1", "localhost")):
        answer = sign_in(client_for(tls_slapd, ldap_url=url, ldap_ca_file=ca_file))
        assert answer.status_code == 201, (url, answer.get_json())
        assert answer.get_json()["role"] == "admin"


def test_start_tls_with_the_ca_file_signs_in(tls_slapd, certs):
    client = client_for(tls_slapd, ldap_start_tls=True, ldap_ca_file=str(certs[0].cert_file))
    answer = sign_in(client)
    assert answer.status_code == 201, answer.get_json()


@pytest.mark.parametrize("start_tls", [False, True])
def test_a_certificate_no_trusted_ca_signed_is_refused(tls_slapd, tmp_path, start_tls, caplog):
    url = tls_slapd.url if start_tls else tls_slapd.ldaps_url
    other_ca = make_ca(tmp_path / "other", "another CA")
    for ca_file in ("", str(other_ca.cert_file)):  # the system's CAs, a CA that did not sign
        client = client_for(tls_slapd, ldap_url=url, ldap_start_tls=start_tls,
                            ldap_ca_file=ca_file)
        with caplog.at_level(logging.ERROR, logger="smacommon.directory"):
            answer = sign_in(client)
        assert_refused(answer, "TLS certificate is not trusted",
                       "set SMA_LDAP_CA_FILE to the CA that signed it", "API token")
    assert url in caplog.text and "certificate verify failed" in caplog.text


def test_a_self_signed_server_certificate_is_refused(start_slapd, tmp_path, certs):  # noqa: F811
    own = make_server_cert(tmp_path / "own", None)  # signs itself, for the right names
    server = start_slapd(own, name="self-signed")
    answer = sign_in(client_for(server, ldap_url=server.ldaps_url,
                                ldap_ca_file=str(certs[0].cert_file)))
    assert_refused(answer, "TLS certificate is not trusted", "SMA_LDAP_CA_FILE")


@pytest.mark.parametrize("start_tls", [False, True])
def test_a_certificate_for_another_host_is_refused(start_slapd, tmp_path, certs,  # noqa: F811
                                                   start_tls, caplog):
    ca = certs[0]
    elsewhere = make_server_cert(tmp_path / "elsewhere", ca, dns=("ldap.example.org",),
                                 ips=("10.9.9.9",))  # the trusted CA, but not 127.0.0.1
    server = start_slapd(elsewhere, name="elsewhere")
    url = server.url if start_tls else server.ldaps_url
    client = client_for(server, ldap_url=url, ldap_start_tls=start_tls,
                        ldap_ca_file=str(ca.cert_file))
    with caplog.at_level(logging.ERROR, logger="smacommon.directory"):
        answer = sign_in(client)
    assert_refused(answer, "not issued for the host in SMA_LDAP_URL")
    assert "mismatch" in caplog.text  # OpenSSL's reason, for the admin


def test_start_tls_of_a_directory_without_tls_says_so(start_slapd):  # noqa: F811
    plain = start_slapd()
    answer = sign_in(client_for(plain, ldap_start_tls=True))
    assert_refused(answer, "refused StartTLS", "SMA_LDAP_START_TLS")


def test_a_ca_file_sma_cannot_read_is_named(tls_slapd, tmp_path):
    client = client_for(tls_slapd, ldap_url=tls_slapd.ldaps_url,
                        ldap_ca_file=str(tmp_path / "missing.pem"))
    assert_refused(sign_in(client), "cannot read the CA bundle of SMA_LDAP_CA_FILE")


def test_settings_take_tls_to_a_remote_directory_and_refuse_clear_text():
    base = {"ldap_user_base": "dc=example", "role_mapping": {"cn=ops,dc=example": "admin"}}
    assert load_settings(ldap_url="ldaps://ldap.example.org", **base).ldap_url
    assert load_settings(ldap_url="ldap://ldap.example.org", ldap_start_tls=True, **base)
    with pytest.raises(ConfigurationError, match="SMA_LDAP_URL.*SMA_LDAP_START_TLS"):
        load_settings(ldap_url="ldap://ldap.example.org", **base)


def test_a_ca_file_that_is_not_pem_is_named(tls_slapd, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    client = client_for(tls_slapd, ldap_start_tls=True, ldap_ca_file=str(garbage))
    assert_refused(sign_in(client), "cannot read the CA bundle of SMA_LDAP_CA_FILE")


def test_an_expired_certificate_is_refused(start_slapd, tmp_path, certs):  # noqa: F811
    old = make_server_cert(tmp_path / "old", certs[0], expired=True)
    server = start_slapd(old, name="expired")
    answer = sign_in(client_for(server, ldap_url=server.ldaps_url,
                                ldap_ca_file=str(certs[0].cert_file)))
    assert_refused(answer, "TLS certificate has expired", "renew")


def test_ldaps_to_the_clear_text_port_says_to_check_the_url(tls_slapd, certs):
    wrong_port = tls_slapd.url.replace("ldap://", "ldaps://")  # the ldap:// listener
    answer = sign_in(client_for(tls_slapd, ldap_url=wrong_port,
                                ldap_ca_file=str(certs[0].cert_file)))
    assert_refused(answer, "TLS with the directory failed", "ldaps:// port")
