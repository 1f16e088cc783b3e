"""Asset access for runbooks, over the REST API with the job's own token.

Azure Automation's `automationassets` functions, so its Python runbooks run unmodified.
Every secret fetched is announced to the worker (a `mask` record), which then writes `***`
for it in every record the job produces afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from smarunbook import _record


class AutomationAssetNotFound(LookupError):
    """The asset named does not exist (a LookupError, as in the emulated `automationassets`
    Microsoft ships for local testing)."""


class AutomationAssetError(Exception):
    """The asset service refused or failed."""


AutomationAssetException = AutomationAssetError  # the name Azure's own module gives it


def _call(method: str, path: str, body: Any = None) -> Any:
    url = os.environ.get("SMA_API_URL", "").rstrip("/")
    token = os.environ.get("SMA_JOB_TOKEN", "")
    if not url or not token:
        raise AutomationAssetError("Assets are available only inside an sma job "
                                   "(SMA_API_URL and SMA_JOB_TOKEN are not set).")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/api/v1/runtime/{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    context = None
    if os.environ.get("SMA_API_CA_FILE"):
        import ssl

        context = ssl.create_default_context(cafile=os.environ["SMA_API_CA_FILE"])
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("message") or exc.reason
        except ValueError:
            message = exc.reason
        if exc.code == 404:
            raise AutomationAssetNotFound(message) from None
        raise AutomationAssetError(f"{exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise AutomationAssetError(f"The sma service at {url} cannot be reached: "
                                   f"{exc.reason}") from None


def _mask(*values: Any) -> None:
    for value in values:
        if isinstance(value, str) and value:
            _record({"type": "mask", "value": value})
        elif isinstance(value, dict):
            _mask(*value.values())
        elif isinstance(value, list):
            _mask(*value)
        elif value is not None and not isinstance(value, bool):
            _mask(json.dumps(value))


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def get_automation_variable(name: str) -> Any:
    """The variable's value (any JSON value)."""
    body = _call("GET", f"variables/{_quote(name)}")
    if body.get("is_encrypted"):
        _mask(body["value"])
    return body["value"]


def set_automation_variable(name: str, value: Any) -> None:
    """Set an existing variable's value (AutomationAssetNotFound if there is none)."""
    _call("PUT", f"variables/{_quote(name)}", {"value": value})


def get_automation_credential(name: str) -> dict[str, str]:
    """{"username": ..., "password": ...}"""
    body = _call("GET", f"credentials/{_quote(name)}")
    _mask(body["password"])
    return {"username": body["username"], "password": body["password"]}


def get_automation_connection(name: str) -> dict[str, Any]:
    """The connection's fields by name."""
    body = _call("GET", f"connections/{_quote(name)}")
    _mask(*[body["values"][k] for k in body.get("encrypted_fields", []) if k in body["values"]])
    return body["values"]


def get_automation_certificate(name: str) -> bytes:
    """The certificate as Azure gives it to a runbook: PKCS#12 bytes with its private key
    and no password (`OpenSSL.crypto.load_pkcs12(data)`) when it has a key, else the
    certificate alone (DER)."""
    body = _call("GET", f"certificates/{_quote(name)}")
    return base64.b64decode(body["data"])
