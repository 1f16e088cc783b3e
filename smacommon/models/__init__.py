"""SQLAlchemy models; importing this package registers every table on `Base.metadata`."""

from smacommon.db import Base
from smacommon.models.asset import Certificate, Connection, ConnectionType, Credential, Variable
from smacommon.models.auth import ApiToken, AuditEvent
from smacommon.models.binding import RoleBinding
from smacommon.models.config import ServiceSetting
from smacommon.models.job import Job, JobAttempt, JobStatusEvent, JobStream
from smacommon.models.module import Module, ModuleBlob
from smacommon.models.portal import DirectorySession, PortalSession
from smacommon.models.runbook import Runbook, RunbookVersion
from smacommon.models.schedule import JobSchedule, Schedule, ScheduleFire
from smacommon.models.webhook import Webhook
from smacommon.models.worker import Worker

__all__ = [
    "ApiToken", "AuditEvent", "Base", "Certificate", "Connection", "ConnectionType", "Credential",
    "DirectorySession", "Job", "JobAttempt", "JobSchedule", "JobStatusEvent", "JobStream",
    "Module", "ModuleBlob", "PortalSession", "RoleBinding", "Runbook", "RunbookVersion",
    "Schedule", "ScheduleFire", "ServiceSetting", "Variable", "Webhook", "Worker",
]
