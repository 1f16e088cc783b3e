"""A running job's checkpoints, as the runner keeps them: sealed with the job's keys once
they can be had, then written with the next batch of records the database takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, update

from smacommon.db import utcnow
from smacommon.models import Job
from smacommon.sealing import seal

if TYPE_CHECKING:
    from smaworker.capture import StreamWriter
    from smaworker.jobkeys import JobKeys

_jobs = Job.__table__


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A checkpoint the runbook wrote (any JSON value, null too) at `at`, not sealed yet."""

    data: Any
    at: datetime


@dataclass(frozen=True, eq=False)
class SealedCheckpoint:
    """A checkpoint sealed with the job's keys, until a transaction that commits writes it."""

    token: str
    at: datetime


class Checkpointing:
    """The checkpoint half of smaworker.runner.JobRunner, which sets these attributes."""

    job_id: Any
    attempt: int
    keys: JobKeys
    unsealed_checkpoint: Checkpoint | None  # until the keys are had
    pending_checkpoint: SealedCheckpoint | None  # until it is written
    _checkpoint_sent: SealedCheckpoint | None

    def checkpoint(self, writer: StreamWriter, data: Any) -> None:
        """Seal the runbook's checkpoint with the job's keys and keep it with every record
        written before it (now, or with the next batch the database takes)."""
        self.unsealed_checkpoint = Checkpoint(data, utcnow())
        self.seal_checkpoint(writer)

    def seal_checkpoint(self, writer: StreamWriter, *, now: bool = False) -> None:
        """Seal the checkpoint that waits for the job's keys, once they can be had (the
        first checkpoint of a job asks for them)."""
        if self.unsealed_checkpoint is None:
            return
        keys = self.keys.get_soon(now=now)
        if keys is None:
            return
        unsealed, self.unsealed_checkpoint = self.unsealed_checkpoint, None
        self.pending_checkpoint = SealedCheckpoint(seal(keys, unsealed.data), unsealed.at)
        writer.dirty = True
        writer.flush()

    def write_checkpoint(self, conn: Connection) -> None:
        """The sealed checkpoint that waits, written in `conn`'s transaction (a batch's);
        forgotten once that transaction commits (see JobRunner.transaction)."""
        if self.pending_checkpoint is None:
            return
        conn.execute(update(_jobs).where(_jobs.c.id == self.job_id,
                                         _jobs.c.attempt == self.attempt)
                     .values(checkpoint=None, sealed_checkpoint=self.pending_checkpoint.token,
                             checkpoint_at=self.pending_checkpoint.at))
        self._checkpoint_sent = self.pending_checkpoint
