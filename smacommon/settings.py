"""One validated settings object, read from SMA_* environment variables (and an optional .env)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smacommon.errors import ConfigurationError
from smacommon.settings_oidc import OidcSettings
from smacommon.workergroups import NAME_RULE, is_valid_worker_group

MIN_SECRET_CHARS = 16
# A worker whose heartbeat is older than this many intervals is lost (smacommon.services.
# workers.online_since), and a job's lease is as long by default: a worker that dies is
# seen gone, and its jobs' leases run out, within the same bound (README, "How fast sma
# notices a lost worker").
LOST_AFTER_HEARTBEATS = 3


def _default_data_dir() -> Path:
    home = os.path.expanduser("~")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return Path(base) / "sma"


class Settings(OidcSettings, BaseSettings):
    """Service-wide settings; every field is `SMA_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="SMA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str = ""
    redis_url: str = ""
    api_url: str = "http://127.0.0.1:8080"
    api_ca_file: str = ""  # CA bundle jobs trust for SMA_API_URL (a self-signed cert)
    # the public URL of the web service as clouds reach it: the `iss` of job identity
    # tokens and where /.well-known/openid-configuration is found (empty: the URL each
    # request came to, fine for Vault on the same network, not for AWS or Azure)
    oidc_issuer_url: str = ""
    secret_key: str = ""
    encryption_keys: str = ""
    admin_token: str = ""
    metrics_token: str = ""  # when set, /metrics wants it as a bearer token
    # reverse proxies in front of the web service whose X-Forwarded-For/-Proto are believed
    trusted_proxies: int = 0
    worker_group: str = "default"
    worker_name: str = ""
    python: str = ""
    # where runbooks' requirements come from (publish resolves them, workers install them):
    # a mirror or private index instead of PyPI, more indexes, folders or pages of wheels
    # (space- or comma-separated); empty: uv's and pip's own defaults (PyPI)
    pip_index_url: str = ""
    pip_extra_index_url: str = ""
    pip_find_links: str = ""
    # where workers build runbooks' environments (empty: <data_dir>/envs); it and its parents
    # must be readable by the job user, so never a folder inside a 0700 home
    env_dir: str = ""
    # an environment no job has used for this many days is removed
    env_max_idle_days: float = Field(default=30, gt=0, le=3650)
    # the largest uploaded module (a wheel, sdist, PowerShell zip or Bash library), in MiB;
    # modules are kept in the database, so every web process and worker host reaches them
    module_max_mb: int = Field(default=50, ge=1, le=1024)
    job_user: str = Field(default="sma-job", pattern=r"^([a-z_][a-z0-9_.-]{0,31})?$")
    # a root worker runs jobs only inside bubblewrap, as SMA_JOB_USER, unless this says
    # the operator accepts jobs that can read each other's environment, tokens and files
    allow_unsandboxed: bool = False
    job_output_limit: int = Field(default=100 * 1024 * 1024, ge=1024)
    # a job's resource limits unless its runbook sets its own (0: no limit); see
    # smaworker/limits.py for how they are applied
    job_memory_mb: int = Field(default=2048, ge=0, le=1 << 24)
    job_max_processes: int = Field(default=512, ge=0, le=1 << 22)
    job_max_open_files: int = Field(default=4096, ge=0, le=1 << 20)
    job_cpu_seconds: int = Field(default=0, ge=0, le=366 * 86400)
    job_max_file_mb: int = Field(default=0, ge=0, le=1 << 24)
    # uids a root worker gives its jobs, one per running job ("first-last"; empty: every
    # job runs as SMA_JOB_USER's own uid)
    job_uid_range: str = Field(default="61184-65519", pattern=r"^(\d{1,10}-\d{1,10})?$")
    job_cgroups: bool = True  # a cgroup v2 per job where the worker may make one
    # Python jobs start in a host pre-started in its sandbox (smaworker/warm.py); false:
    # every job starts its own process when it starts
    warm_python: bool = True
    job_retention_days: int = Field(default=90, ge=1)
    max_request_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_content_bytes: int = Field(default=1024 * 1024, ge=1024)
    # the web server's guard against slow and greedy clients (smaweb/ggevent.py)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    max_connections_per_address: int = Field(default=100, ge=0)  # 0: no limit
    # a busy job's records are written this many at a time (or every stream_batch_ms): a
    # commit per 4,000 lines, not per 1,000, is ~8 % more lines a second on SQLite
    stream_batch_lines: int = Field(default=4000, ge=1, le=100_000)
    stream_batch_ms: int = Field(default=100, ge=1, le=60_000)
    max_line_bytes: int = Field(default=64 * 1024, ge=256)
    kill_grace_seconds: float = Field(default=3.0, ge=0, le=300)
    # a worker told to stop lets its running jobs end for this long, then suspends the rest
    # (they resume from their last checkpoint when a worker of their group is back)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=86400)
    # empty: LOST_AFTER_HEARTBEATS heartbeats (9 s); renewed every third of it
    job_lease_seconds: float | None = Field(default=None, ge=1, le=3600)
    db_retry_seconds: float = Field(default=300.0, ge=0, le=86400)
    worker_heartbeat_seconds: float = Field(default=3.0, ge=0.2, le=3600)
    config_cache_seconds: float = Field(default=10.0, ge=0, le=3600)
    celery_events: bool = False
    # how often each process sends the counts its jobs recorded to Redis (smacommon.metrics)
    metrics_flush_seconds: float = Field(default=1.0, gt=0, le=3600)
    log_format: str = Field(default="json", pattern=r"^(json|text)$")
    schedule_check_seconds: float = Field(default=1.0, ge=0.05, le=60)
    max_job_depth: int = Field(default=10, ge=1, le=100)
    reaper_interval_seconds: float = Field(default=2.0, ge=0.2, le=3600)
    requeue_new_after_seconds: float = Field(default=60.0, ge=1, le=86400)
    max_attempts: int = Field(default=3, ge=1, le=100)

    @field_validator("oidc_issuer_url")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        value = value.strip().rstrip("/")
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query \
                or parts.fragment:
            raise ValueError("must be the service's public URL, https://host[:port][/path], "
                             "with no query or fragment (AWS and Azure want https)")
        return value

    @field_validator("job_lease_seconds", mode="before")
    @classmethod
    def _lease_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _lease_from_heartbeat(self) -> Settings:
        if self.job_lease_seconds is None:
            self.job_lease_seconds = max(1.0, LOST_AFTER_HEARTBEATS
                                         * self.worker_heartbeat_seconds)
        return self

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError("must be a SQLAlchemy URL such as sqlite:////path/sma.db or "
                             "postgresql+psycopg://user@host/db")
        return value

    @field_validator("admin_token", "secret_key")
    @classmethod
    def _strong_secret(cls, value: str) -> str:
        # empty: sma makes one (the admin token at first start, the key in the data folder)
        if value and len(value) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters (make one with "
                             "`openssl rand -hex 32`), or empty to have sma make one")
        return value

    @field_validator("worker_group")
    @classmethod
    def _worker_group(cls, value: str) -> str:
        if not is_valid_worker_group(value):
            raise ValueError(f"must be {NAME_RULE}")
        return value

    @field_validator("worker_name")
    @classmethod
    def _worker_name(cls, value: str) -> str:
        if value in (".", ".."):  # as for every name sma shows (smacommon.names)
            raise ValueError("'.' and '..' cannot be names")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value:
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (a socket: "
                             "unix://[:PASSWORD@]/path/redis.sock?db=0)")
        from redis.connection import parse_url

        parsed = parse_url(value)  # ValueError names a bad query value
        if value.startswith("unix://") and not parsed.get("path"):
            raise ValueError("a unix:// URL needs the socket's path: unix:///path/redis.sock")
        if parsed.get("ssl_cert_reqs", "required") not in ("none", "optional", "required"):
            raise ValueError("ssl_cert_reqs must be none, optional or required")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: object) -> int:
        try:
            count = int(str(value).strip() or 0)
        except ValueError:
            count = -1
        if not 0 <= count <= 10:
            raise ValueError("must be the number of reverse proxies in front of the web service "
                             "(0, the default: none; 1 for one nginx or Caddy), at most 10")
        return count

    @property
    def effective_redis_url(self) -> str:
        """The configured Redis, or the embedded one `sma up` keeps in the data folder (its
        socket and password file), or empty."""
        if self.redis_url:
            return self.redis_url
        from smacommon.embedded_redis import socket_url

        return socket_url(self.data_dir / "redis") or ""

    @field_validator("job_uid_range")
    @classmethod
    def _job_uid_range(cls, value: str) -> str:
        if value:
            first, last = (int(part) for part in value.split("-"))
            if not 1000 <= first <= last < 2**31 - 1:
                raise ValueError("must be FIRST-LAST with 1000 <= FIRST <= LAST < 2147483647 "
                                 "(uids no user or service of this host has)")
        return value

    @property
    def job_uids(self) -> range | None:
        """The uids of SMA_JOB_UID_RANGE, None when it is empty."""
        if not self.job_uid_range:
            return None
        first, last = (int(part) for part in self.job_uid_range.split("-"))
        return range(first, last + 1)

    @property
    def effective_database_url(self) -> str:
        """The configured database, or a SQLite file in the data folder."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://"):]
            return url
        return f"sqlite:///{(self.data_dir / 'sma.db').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; a bad value raises ConfigurationError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a check of several settings names them in its message
                problems.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            problems.append(f"SMA_{str(err['loc'][0]).upper()}: {err['msg']}")
        raise ConfigurationError("Invalid setting: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
