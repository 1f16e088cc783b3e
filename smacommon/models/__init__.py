"""SQLAlchemy models; importing this package registers every table on `Base.metadata`."""

from smacommon.db import Base
from smacommon.models.asset import Certificate, Connection, ConnectionType, Credential, Variable
from smacommon.models.auth import ApiToken, AuditEvent
from smacommon.models.job import Job, JobStatusEvent, JobStream
from smacommon.models.runbook import Runbook, RunbookVersion
from smacommon.models.worker import Worker

__all__ = [
    "ApiToken", "AuditEvent", "Base", "Certificate", "Connection", "ConnectionType", "Credential",
    "Job", "JobStatusEvent", "JobStream", "Runbook", "RunbookVersion", "Variable", "Worker",
]
