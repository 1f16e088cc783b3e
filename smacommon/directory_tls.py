"""TLS to the directory (ldaps:// or StartTLS), and what to tell the operator when it fails.

ldap3 2.9 turns the ssl module's own host name check off and calls ssl.match_hostname,
which Python 3.12 removed (ldap3's fallback then refuses every address given as an IP).
CheckedTls wraps the socket as an HTTPS client does instead: the CA bundle of
SMA_LDAP_CA_FILE (the system's when empty), the certificate required, its names checked by
OpenSSL against SMA_LDAP_URL's host (DNS or IP subjectAltName), SNI sent. The ssl error is
kept on the connection, as ldap3 re-raises it as its own type with only its text.
"""

from __future__ import annotations

import ssl

from ldap3 import Tls
from ldap3.core.exceptions import LDAPStartTLSError

_ERROR = "sma_tls_error"
_CA_FILE = "sma_tls_ca_file_error"
_HOST_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_UNTRUSTED = (2, 18, 19, 20, 21)  # no issuer found, self-signed, not the local issuer
_EXPIRED = 10
_NOT_YET_VALID = 9


class CheckedTls(Tls):
    """ldap3's Tls with the certificate and its host name checked by the ssl module."""

    def __init__(self, ca_file: str = "") -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        # read at each connection, not here (ldap3 would refuse a missing file at start
        # with its own words): a fixed file works without a restart, and the message names
        # SMA_LDAP_CA_FILE
        self.ca_certs_file = ca_file or None

    def wrap_socket(self, connection, do_handshake=False):
        try:
            context = ssl.create_default_context(cafile=self.ca_certs_file)
        except (OSError, ssl.SSLError) as exc:
            setattr(connection, _CA_FILE, exc)
            raise
        try:
            connection.socket = context.wrap_socket(
                connection.socket, server_hostname=connection.server.host,
                do_handshake_on_connect=do_handshake)
        except ssl.SSLError as exc:
            setattr(connection, _ERROR, exc)
            raise


def tls_problem(connection, exc: Exception) -> str | None:
    """What an admin must fix when `exc` (from opening `connection` or its StartTLS) was TLS
    going wrong; None when it was not (the directory did not answer, say)."""
    if getattr(connection, _CA_FILE, None) is not None:
        return ("sma cannot read the CA bundle of SMA_LDAP_CA_FILE: an admin must point it "
                "at a readable PEM file of the CA that signed the directory's certificate")
    error = getattr(connection, _ERROR, None)
    if isinstance(error, ssl.SSLCertVerificationError):
        code = error.verify_code
        if code in _HOST_MISMATCH:
            return ("The directory's TLS certificate is not issued for the host in "
                    "SMA_LDAP_URL: an admin must put a name the certificate holds in "
                    "SMA_LDAP_URL, or have the certificate reissued for that host")
        if code in (_EXPIRED, _NOT_YET_VALID):
            when = "has expired" if code == _EXPIRED else "is not valid yet"
            return (f"The directory's TLS certificate {when}: an admin must renew the "
                    "directory's certificate (or check the clocks)")
        hint = ("set SMA_LDAP_CA_FILE to the CA that signed it" if code in _UNTRUSTED
                else "check the directory's certificate and SMA_LDAP_CA_FILE")
        return (f"The directory's TLS certificate is not trusted ({error.verify_message}): "
                f"an admin must {hint}")
    if error is not None:
        return (f"TLS with the directory failed ({error.reason or error}): an admin must check "
                "that SMA_LDAP_URL names the directory's ldaps:// port (or ldap:// with "
                "SMA_LDAP_START_TLS)")
    if isinstance(exc, LDAPStartTLSError):
        return ("The directory refused StartTLS (SMA_LDAP_START_TLS=true): an admin must turn "
                "TLS on in the directory, or use its ldaps:// URL in SMA_LDAP_URL")
    return None
