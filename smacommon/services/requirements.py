"""A draft's requirements (PEP 723) resolved for publishing it or testing it, with no
transaction open while the resolver waits on the package index."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from smacommon.db import reading
from smacommon.errors import Conflict
from smacommon.models import Runbook
from smacommon.requirements import Requirements, declared
from smacommon.resolver import resolve, worker_python
from smacommon.services.runbooks import draft_parameters, get_runbook
from smacommon.settings import Settings


@dataclass(frozen=True)
class ResolvedDraft:
    """A draft's content as it was read, and the pinned set resolved for it (None: it
    declares no requirements)."""

    content: str | None
    requirements: Requirements | None

    def requirements_of(self, runbook: Runbook) -> Requirements | None:
        """The pinned set, if the runbook's draft is still the one resolved; else Conflict."""
        if runbook.draft_content != self.content:
            raise Conflict(f"The draft of runbook {runbook.name!r} changed while its "
                           "requirements were resolved; try again.")
        return self.requirements


def declared_requirements(runbook_type: str, content: str) -> Requirements | None:
    """What a Python runbook's `# /// script` block asks for; in Bash or PowerShell such a
    block is a comment like any other."""
    return declared(content) if runbook_type == "python" else None


def extra_find_links(session: Session) -> list[str]:
    """Places of wheels the resolver searches beside SMA_PIP_FIND_LINKS: the folder of the
    uploaded Python modules' files, brought up to date from the database ([] when none)."""
    from smacommon.services.module_links import find_links_folder, python_find_links
    from smacommon.settings import get_settings

    return python_find_links(session, find_links_folder(get_settings()))


def resolve_draft(session: Session, ref: str, settings: Settings) -> ResolvedDraft:
    """The draft of runbook `ref`, checked (syntax, the `# /// script` block) and its
    requirements resolved. Call it before changing anything through `session`: it ends the
    session's transaction, reads in a read-only one and ends that too before resolving, so
    no lock is held (on SQLite, the whole database's) while the index is asked."""
    session.rollback()
    try:
        runbook = get_runbook(reading(session), ref)
        content = runbook.draft_content
        wanted = None
        if content is not None:
            draft_parameters(runbook, content)  # a syntax error is told before any wait
            wanted = declared_requirements(runbook.runbook_type, content)
        links = extra_find_links(session) if wanted else []
    finally:
        session.rollback()
    if wanted is None:
        return ResolvedDraft(content, None)
    return ResolvedDraft(content, resolve(wanted, worker_python(settings), find_links=links,
                                          settings=settings))
