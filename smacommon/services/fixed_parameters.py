"""The fixed parameters of a schedule link or a webhook: what every job it starts is given.

The values of parameters the runbook's published version declares secret are stored as ***
in `parameters` (all a reader sees: API, portal, CLI) and sealed in `sealed_parameters` under
the configured encryption keys, as asset secrets are: only the processes that hold those keys
(the web service, which invokes webhooks, and beat, which fires schedules) open them, to
start a job, which seals them under its own keys. No per-object key is derived (as
`Crypto.for_job` does for jobs): nothing is ever given one link's or webhook's keys, and
`sma keys rotate` re-seals these columns with the asset secrets.

A value sealed stays sealed until the parameters are given again, even when a later version
no longer declares it secret (its jobs seal it too); publishing a version that declares a
parameter secret seals the value of every link and webhook of the runbook that held it in
clear.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smacommon.crypto import Crypto
from smacommon.models import JobSchedule, Runbook, Webhook
from smacommon.sealing import SHOWN, secret_names, split_secret

Fixed = JobSchedule | Webhook


def _crypto() -> Crypto:
    from smacommon.crypto import get_crypto
    from smacommon.settings import get_settings

    return get_crypto(get_settings())


def store(item: Fixed, declared: list[dict[str, Any]], values: dict[str, Any],
          also: frozenset[str] = frozenset()) -> None:
    """Set `item`'s parameters to checked `values`: the secret ones (declared, or named in
    `also`) shown as *** and sealed together. The keys are loaded only when there are."""
    shown, secret = split_secret(declared, values, also)
    item.parameters = shown
    item.sealed_parameters = _crypto().encrypt(json.dumps(secret)) if secret else None


def sealed_values(item: Fixed, crypto: Crypto | None = None) -> dict[str, Any]:
    """The values `item` keeps sealed ({} when none); ConfigurationError when the configured
    keys cannot open them."""
    if not item.sealed_parameters:
        return {}
    return json.loads((crypto or _crypto()).decrypt(item.sealed_parameters))


def job_parameters(item: Fixed) -> tuple[dict[str, Any], frozenset[str]]:
    """The parameters a job started from `item` gets, sealed values opened, and the names of
    those (the job seals them, whatever its version declares)."""
    secret = sealed_values(item)
    if not secret:
        return dict(item.parameters or {}), frozenset()
    return {**(item.parameters or {}), **secret}, frozenset(secret)


def keep_sealed(item: Fixed, given: dict[str, Any]) -> dict[str, Any]:
    """`given`, where *** stands for a value `item` keeps sealed, with that value (parameters
    sent back as they were read keep their secrets)."""
    if not item.sealed_parameters or SHOWN not in given.values():
        return given
    secret = sealed_values(item)
    return {k: secret[k] if v == SHOWN and k in secret else v for k, v in given.items()}


def seal_newly_secret(session: Session, runbook: Runbook) -> int:
    """After a publish: seal the values that the runbook's links and webhooks hold in clear of
    parameters the new version declares secret; the number of links and webhooks changed."""
    names = secret_names(runbook.published_version.parameters)
    if not names:
        return 0
    changed = 0
    for model in (JobSchedule, Webhook):
        for item in session.scalars(select(model).where(model.runbook_id == runbook.id)):
            if not names.intersection(item.parameters or {}):
                continue
            secret = sealed_values(item)
            if names.intersection(item.parameters).issubset(secret):
                continue  # sealed already
            store(item, [], {**item.parameters, **secret},
                  also=frozenset(secret) | names)
            changed += 1
    return changed
