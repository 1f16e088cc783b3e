"""What a job keeps sealed at rest: the values of its secret parameters and its checkpoint.

Both are Fernet tokens under the job's own keys, derived from the configured encryption keys
and the job's id (`Crypto.for_job`). The web service seals secret parameters when a job is
started; a worker asks for the keys of a job it runs (`GET /api/v1/runtime/job-keys`, with
the job's token), so it holds no configured key and can read no other job's data. (The
secret fixed parameters of schedule links and webhooks are sealed under the configured keys
themselves: smacommon.services.fixed_parameters.)
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from smacommon.crypto import Crypto

SHOWN = "***"  # what readers see for the value of a secret parameter


def secret_names(declared: list[dict[str, Any]]) -> set[str]:
    """The parameters declared secret."""
    return {d["name"] for d in declared if d.get("secret")}


def split_secret(declared: list[dict[str, Any]], values: dict[str, Any],
                 also: frozenset[str] = frozenset()) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values to store as they are (secret ones shown as ***), and the secret values;
    `also` names values kept secret whatever the declaration says."""
    names = secret_names(declared) | also
    if not names or not names.intersection(values):
        return values, {}
    shown = {k: SHOWN if k in names else v for k, v in values.items()}
    return shown, {k: v for k, v in values.items() if k in names}


def seal(job_crypto: Crypto, value: Any) -> str:
    """`value` (any JSON value) as a token only the job's keys (`Crypto.for_job`) open."""
    return job_crypto.encrypt(json.dumps(value, default=str))


def unseal(job_crypto: Crypto, token: str) -> Any:
    """The value in a token sealed for the job whose keys `job_crypto` holds."""
    return json.loads(job_crypto.decrypt(token))


def seal_parameters(declared: list[dict[str, Any]], values: dict[str, Any],
                    job_id: uuid.UUID, also: frozenset[str] = frozenset(),
                    ) -> tuple[dict[str, Any], str | None]:
    """The parameters of a new job as stored: secret values (and those named in `also`)
    shown as *** and sealed together (None when there are none). The keys are loaded only
    when there are."""
    shown, secret = split_secret(declared, values, also)
    if not secret:
        return shown, None
    from smacommon.crypto import get_crypto
    from smacommon.settings import get_settings

    return shown, seal(get_crypto(get_settings()).for_job(job_id), secret)


def rotate_sealed(engine: Any, crypto: Crypto) -> int:
    """Re-seal every job's sealed data under its key derived from the first configured key,
    and seal the checkpoints kept in clear before sealing existed; the count of values."""
    from sqlalchemy import Text, and_, cast, or_, select, update

    from smacommon.models import Job

    jobs = Job.__table__
    count = 0
    # a JSON column "emptied" holds JSON null: only a real value is a checkpoint in clear
    clear_checkpoint = and_(jobs.c.checkpoint.is_not(None),
                            cast(jobs.c.checkpoint, Text) != "null")
    with engine.begin() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.sealed_parameters, jobs.c.sealed_checkpoint,
                                   jobs.c.checkpoint)
                            .where(or_(jobs.c.sealed_parameters.is_not(None),
                                       jobs.c.sealed_checkpoint.is_not(None),
                                       clear_checkpoint))).all()
        for row in rows:
            job_crypto = crypto.for_job(row.id)
            values: dict[str, Any] = {}
            if row.sealed_parameters:
                values["sealed_parameters"] = job_crypto.rotate(row.sealed_parameters)
            if row.sealed_checkpoint:
                values["sealed_checkpoint"] = job_crypto.rotate(row.sealed_checkpoint)
            elif row.checkpoint is not None:
                values["sealed_checkpoint"] = seal(job_crypto, row.checkpoint)
            values["checkpoint"] = None
            # not over a checkpoint its worker wrote meanwhile
            same = (jobs.c.sealed_checkpoint == row.sealed_checkpoint
                    if row.sealed_checkpoint is not None else jobs.c.sealed_checkpoint.is_(None))
            conn.execute(update(jobs).where(jobs.c.id == row.id, same).values(values))
            count += len(values) - 1
    return count
