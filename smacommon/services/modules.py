"""Uploaded modules: upload, find, delete (refused while a published runbook version pins
one), and their content kept once per SHA-256."""

from __future__ import annotations

import hashlib
import uuid

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, canonicalize_version
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smacommon.errors import Conflict, NotFound
from smacommon.models import Module, ModuleBlob, Runbook, RunbookVersion
from smacommon.modulefiles import inspect
from smacommon.modulefiles.types import normalize
from smacommon.services.audit import record
from smacommon.settings import Settings

UPLOAD_SLACK = 1024 * 1024  # a multipart body's own bytes around an uploaded file


class ModuleNotFound(NotFound):
    message = "Module not found."


class ModuleExists(Conflict):
    message = "A module of that name and version exists with other content."


class ModuleInUse(Conflict):
    message = "A published runbook version pins the module."


def target(module: Module) -> str:
    """The module as its API path (the audit's target)."""
    return f"/api/v1/modules/{module.normalized_name}/{module.version}"


def same_version(module_type: str, a: str, b: str) -> bool:
    """Whether two versions of a module are one (PEP 440's equality for Python: 1.4 is
    1.4.0)."""
    if a == b:
        return True
    return module_type == "python" and canonicalize_version(a) == canonicalize_version(b)


def max_bytes(settings: Settings) -> int:
    """The largest module file SMA_MODULE_MAX_MB allows, in bytes."""
    return settings.module_max_mb * 1024 * 1024


def too_large(settings: Settings) -> str:
    """What to say of an upload whose body is larger than SMA_MODULE_MAX_MB allows."""
    return f"The upload is larger than SMA_MODULE_MAX_MB ({settings.module_max_mb} MiB)."


def module_query(name: str | None = None, module_type: str | None = None) -> Select:
    """Uploaded modules whose name contains `name` (compared in PEP 503's form) and of
    `module_type`; the API's list and the portal's both page through it."""
    stmt = select(Module)
    if name:
        stmt = stmt.where(Module.normalized_name.contains(normalize(name), autoescape=True))
    if module_type:
        stmt = stmt.where(Module.module_type == module_type)
    return stmt


def find_module(session: Session, name: str, version: str) -> Module | None:
    """The module `name` (any spelling that normalizes to it) at `version`, or None."""
    rows = session.scalars(select(Module).where(Module.normalized_name == normalize(name)))
    return next((m for m in rows if same_version(m.module_type, m.version, version)), None)


def get_module(session: Session, name: str, version: str) -> Module:
    """The module `name` at `version`; ModuleNotFound otherwise."""
    module = find_module(session, name, version)
    if module is None:
        raise ModuleNotFound(f"Module {name!r} has no version {version!r}.")
    return module


def upload_module(session: Session, filename: str, data: bytes, *, max_bytes: int,
                  module_type: str | None = None, version: str | None = None,
                  uploaded_by: str = "") -> tuple[Module, bool]:
    """Keep an uploaded file as a module: (module, True) when new; (the existing module,
    False) when this very file was uploaded before; ModuleExists when that name and version
    exist with other content."""
    found = inspect(filename, data, max_bytes, module_type, version)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = find_module(session, found.name, found.version)
    if existing is not None:
        if existing.sha256 == sha256 and existing.module_type == found.module_type:
            return existing, False
        raise _exists(existing)
    if session.get(ModuleBlob, sha256) is None:
        session.add(ModuleBlob(sha256=sha256, size=len(data), content=data))
    module = Module(name=found.name, normalized_name=found.normalized_name,
                    version=found.version, module_type=found.module_type,
                    filename=found.filename, size=len(data), sha256=sha256,
                    uploaded_by=uploaded_by[:200])
    session.add(module)
    try:
        session.flush()
    except IntegrityError:  # the same module (or the same bytes) uploaded at this moment
        raise ModuleExists(f"Module {module.name} {module.version} was being uploaded at the "
                           "same moment; upload it again to see which one was kept.") from None
    record(session, "module.upload", target(module), module_type=module.module_type,
           size=module.size, sha256=sha256)
    return module, True


def _exists(module: Module) -> ModuleExists:
    return ModuleExists(
        f"Module {module.name} {module.version} exists with other content; upload it as a "
        "new version, or delete that one first.")


def module_content(session: Session, module: Module) -> bytes:
    """The bytes of a module's file."""
    return session.scalar(select(ModuleBlob.content).where(ModuleBlob.sha256 == module.sha256))


def pinning_runbooks(session: Session, module: Module) -> list[str]:
    """Runbooks whose published version pins this module (`name==version` in the pinned set
    of its requirements), by name."""
    return pinned_by(session, [module])[module.id]


def pinned_by(session: Session, modules: list[Module]) -> dict[uuid.UUID, list[str]]:
    """For each module (by id), the runbooks whose published version pins it, by name; the
    published versions are read once for them all (only Python modules are pinned)."""
    found: dict[uuid.UUID, list[str]] = {module.id: [] for module in modules}
    python = [module for module in modules if module.module_type == "python"]
    if not python:
        return found
    rows = session.execute(
        select(Runbook.name, RunbookVersion.requirements)
        .join(RunbookVersion, Runbook.published_version_id == RunbookVersion.id)).all()
    for name, requirements in rows:
        pins = _pinned(requirements)
        for module in python:
            if any(_pins(pin, module) for pin in pins):
                found[module.id].append(name)
    return {module_id: sorted(names) for module_id, names in found.items()}


def _pinned(requirements: object) -> list[str]:
    if not isinstance(requirements, dict) or not isinstance(requirements.get("pinned"), list):
        return []
    return [p for p in requirements["pinned"] if isinstance(p, str)]


def _pins(pin: str, module: Module) -> bool:
    try:
        requirement = Requirement(pin)
    except InvalidRequirement:
        return False
    if canonicalize_name(requirement.name) != module.normalized_name:
        return False
    return any(spec.operator in ("==", "===")
               and same_version("python", spec.version, module.version)
               for spec in requirement.specifier)


def delete_module(session: Session, module: Module) -> None:
    """Delete a module (and its content when no other module has the same bytes); refused
    while a published runbook version pins it."""
    runbooks = pinning_runbooks(session, module)
    if runbooks:
        raise ModuleInUse(
            f"Module {module.name} {module.version} is pinned by the published version of "
            f"{', '.join(runbooks)}; publish versions that do not need it first.",
            {"runbooks": runbooks})
    session.delete(module)
    session.flush()
    if not session.scalar(select(func.count()).select_from(Module)
                          .where(Module.sha256 == module.sha256)):
        blob = session.get(ModuleBlob, module.sha256)
        if blob is not None:
            session.delete(blob)
    record(session, "module.delete", target(module), module_type=module.module_type,
           sha256=module.sha256)
