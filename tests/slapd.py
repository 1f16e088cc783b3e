"""A real OpenLDAP slapd for the sign-in tests: Debian's package, started in a temporary
folder on a free port, with a small tree, and stopped (its own pid) at the end.

With `tls` (tests/certs.py) it also listens for ldaps:// on a second free port
(`ldaps_url`) and answers StartTLS on the ldap:// one, with that certificate.

The tree: dc=example,dc=org with people alice (in sma-admins), bob (in sma-operators),
carol (only in a group no role maps), dave (in sma-operators, his account locked through
the ppolicy overlay's pwdAccountLockedTime), and sma's search account. The memberof
overlay keeps each person's memberOf, as Active Directory does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.certs import ServerCert

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
SEARCH_DN = f"cn=sma-search,{SUFFIX}"
SEARCH_PASSWORD = "search-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ADMINS = f"cn=sma-admins,{GROUPS}"
OPERATORS = f"cn=sma-operators,{GROUPS}"
OTHERS = f"cn=others,{GROUPS}"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}
TLS_CONF = """\
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
"""
MISSING = "Debian's slapd is not installed (make test-deps installs slapd and ldap-utils)"

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
pidfile {tmp}/slapd.pid
argsfile {tmp}/slapd.args
{tls}
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {tmp}/db
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{suffix}"
ppolicy_use_lockout
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by dn.exact="{search_dn}" read by self read by * none
"""


def person_dn(name: str) -> str:
    return f"uid={name},{PEOPLE}"


def user_dn(name: str) -> str:
    return person_dn(name)


class _Exited(RuntimeError):
    """slapd ended at once."""


class Slapd:
    """One running slapd; `url` to reach it, `admin()` a connection as its root."""

    def __init__(self, tmp: Path, tls: ServerCert | None = None) -> None:
        self.tmp = tmp
        self.tls = tls
        self._ports()
        self.proc: subprocess.Popen | None = None

    def _ports(self) -> None:
        from smacommon.embedded_redis import free_port

        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_port = free_port() if self.tls else None
        self.ldaps_url = f"ldaps://127.0.0.1:{self.ldaps_port}" if self.tls else None

    def start(self, tries: int = 3) -> Slapd:
        """Start it; on other free ports when it could not listen (a port found free was
        taken by another test meanwhile: slapd -d 0 exits 1 and says nothing)."""
        for _ in range(tries - 1):
            try:
                return self._start()
            except _Exited:
                self._ports()
        return self._start()

    def _start(self) -> Slapd:
        (self.tmp / "db").mkdir(parents=True, exist_ok=True)
        conf = self.tmp / "slapd.conf"
        tls = TLS_CONF.format(ca=self.tls.ca_file, cert=self.tls.cert_file,
                              key=self.tls.key_file) if self.tls else ""
        conf.write_text(CONF.format(tmp=self.tmp, suffix=SUFFIX, root_dn=ROOT_DN, tls=tls,
                                    root_password=ROOT_PASSWORD, search_dn=SEARCH_DN))
        urls = f"{self.url}/" + (f" {self.ldaps_url}/" if self.tls else "")
        self._log = open(self.tmp / "slapd.log", "ab")  # noqa: SIM115 - closed in stop()
        # -d: stay in the foreground (our child, its own pid), logging only start-up errors
        self.proc = subprocess.Popen([SLAPD, "-d", "0", "-h", urls, "-f", str(conf)],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.admin().unbind()
                break
            except Exception:
                code = self.proc.poll()
                if code is not None or time.monotonic() > deadline:
                    self.stop()
                    said = (self.tmp / "slapd.log").read_text()[-2000:]
                    if code is not None:
                        raise _Exited(f"slapd did not start (exit code {code}): {said}") \
                            from None
                    raise RuntimeError(f"slapd did not start: {said}") from None
                time.sleep(0.05)
        self._load()
        return self

    def admin(self):
        from ldap3 import Connection, Server

        server = Server(self.url, connect_timeout=2)
        return Connection(server, ROOT_DN, ROOT_PASSWORD, auto_bind=True, receive_timeout=5)

    def _add(self, conn, dn: str, classes: list[str], attrs: dict) -> None:
        assert conn.add(dn, classes, attrs), (dn, conn.result)

    def _load(self) -> None:
        conn = self.admin()
        self._add(conn, SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
        for ou in ("people", "groups", "policies"):
            self._add(conn, f"ou={ou},{SUFFIX}", ["organizationalUnit"], {"ou": ou})
        self._add(conn, f"cn=default,ou=policies,{SUFFIX}",
                  ["device", "pwdPolicy"], {"cn": "default", "pwdAttribute": "userPassword",
                                            "pwdLockout": "TRUE", "pwdMaxFailure": "50"})
        self._add(conn, SEARCH_DN, ["organizationalRole", "simpleSecurityObject"],
                  {"cn": "sma-search", "userPassword": SEARCH_PASSWORD})
        for name, password in PASSWORDS.items():
            self._add(conn, person_dn(name), ["inetOrgPerson"],
                      {"uid": name, "cn": name.title(), "sn": name.title(),
                       "userPassword": password})
        for dn, members in ((ADMINS, ["alice"]), (OPERATORS, ["bob", "dave"]),
                            (OTHERS, ["carol"])):
            self._add(conn, dn, ["groupOfNames"], {"cn": dn.split(",")[0][3:],
                                                   "member": [person_dn(m) for m in members]})
        # an admin locks dave's account: the ppolicy overlay refuses his binds from now on
        from ldap3 import MODIFY_REPLACE

        assert conn.modify(person_dn("dave"),
                           {"pwdAccountLockedTime": [(MODIFY_REPLACE, ["000001010000Z"])]}), \
            conn.result
        conn.unbind()

    def remove_member(self, group: str, name: str) -> None:
        from ldap3 import MODIFY_DELETE

        conn = self.admin()
        assert conn.modify(group, {"member": [(MODIFY_DELETE, [person_dn(name)])]}), conn.result
        conn.unbind()

    def add_member(self, group: str, name: str) -> None:
        from ldap3 import MODIFY_ADD

        conn = self.admin()
        assert conn.modify(group, {"member": [(MODIFY_ADD, [person_dn(name)])]}), conn.result
        conn.unbind()

    def stop(self) -> None:
        """End our slapd (its own pid: TERM, then KILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture
def slapd(tmp_path):
    """A running slapd with the test tree; skipped, saying why, where slapd is missing."""
    if not os.path.exists(SLAPD):
        pytest.skip(MISSING)
    server = Slapd(tmp_path / "slapd").start()
    yield server
    server.stop()


@pytest.fixture
def start_slapd(tmp_path):
    """start_slapd(tls=None, name="slapd"): a running slapd with the test tree in
    tmp_path/name (TLS with that certificate when given); each stopped at the end."""
    if not os.path.exists(SLAPD):
        pytest.skip(MISSING)
    started: list[Slapd] = []

    def start(tls: ServerCert | None = None, name: str = "slapd") -> Slapd:
        started.append(Slapd(tmp_path / name, tls))
        return started[-1].start()

    yield start
    for server in started:
        server.stop()


def ldap_settings(server: Slapd, **overrides) -> dict[str, object]:
    """The SMA_LDAP_* settings (as Settings keyword arguments) for this slapd."""
    return {"ldap_url": server.url, "ldap_bind_dn": SEARCH_DN,
            "ldap_bind_password": SEARCH_PASSWORD, "ldap_user_base": PEOPLE,
            "ldap_timeout_seconds": 3,
            "role_mapping": {ADMINS: "admin", OPERATORS: "operator"}, **overrides}
