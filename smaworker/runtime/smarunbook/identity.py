"""The job's identity token: a short-lived JWT, signed by the sma service, that says which
runbook, version and job this is, for a cloud that trusts the service as an OpenID Connect
issuer (AWS AssumeRoleWithWebIdentity, an Azure federated credential, Vault's JWT auth).

The token is announced to the worker as a secret (a `mask` record), so printing it writes
`***` in the job's output.
"""

from __future__ import annotations

import urllib.parse

from smarunbook.assets import _call, _mask


def id_token(audience: str, lifetime: int | None = None) -> str:
    """A token whose `aud` is `audience` (e.g. "sts.amazonaws.com"), valid `lifetime`
    seconds (the service's default, 600, when None; at most 3600)."""
    query = {"audience": audience}
    if lifetime is not None:
        query["lifetime"] = str(int(lifetime))
    body = _call("GET", "id-token?" + urllib.parse.urlencode(query))
    _mask(body["value"])
    return body["value"]
