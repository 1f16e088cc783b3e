"""A runbook's published versions, read-only and compared; and deleting a runbook."""

from __future__ import annotations

import difflib

from flask import abort, redirect, render_template, request, url_for

from smacommon.schemas.common import DB_INT_MAX
from smacommon.services import runbooks as svc
from smaweb.extensions import db
from smaweb.portal import bp
from smaweb.portal.session import login_required, saving


@bp.route("/runbooks/<name>/versions/<int:number>")
@login_required()
def runbook_version(name: str, number: int):
    """One published version: its content (read-only), parameters and requirements."""
    rb = svc.get_runbook(db.session, name)
    version = svc.get_version(db.session, rb, min(number, DB_INT_MAX))
    return render_template("version.html", rb=rb, version=version)


def _version_number(text: str | None, what: str) -> int:
    """A version number from the compare form: 400 saying what to fix otherwise."""
    try:
        number = int(text or "")
    except ValueError:
        abort(400, f"Choose the {what} version to compare: a version number such as 1.")
    if not 0 < number <= DB_INT_MAX:
        abort(400, f"The {what} version must be a version number such as 1.")
    return number


@bp.route("/runbooks/<name>/versions/diff")
@login_required()
def runbook_versions_diff(name: str):
    """The changes from version `a` to version `b` (the draft-vs-published diff's page)."""
    rb = svc.get_runbook(db.session, name)
    a = svc.get_version(db.session, rb, _version_number(request.args.get("a"), "first"))
    b = svc.get_version(db.session, rb, _version_number(request.args.get("b"), "second"))
    lines = list(difflib.unified_diff(a.content.splitlines(), b.content.splitlines(),
                                      f"version {a.number}", f"version {b.number}",
                                      lineterm=""))
    return render_template("diff.html", rb=rb, lines=lines,
                           title=f"Version {a.number} vs version {b.number}",
                           same=f"Versions {a.number} and {b.number} have the same content.")


@bp.route("/runbooks/<name>/delete", methods=["POST"])
@login_required("author")
def runbook_delete(name: str):
    """Delete the runbook; refused (the reason flashed) while a job of it is not finished."""
    rb = svc.get_runbook(db.session, name)
    with saving(f"Runbook {rb.name} deleted with its versions and jobs.") as done:
        svc.delete_runbook(db.session, rb)
    if done.error:
        return redirect(url_for("portal.runbook", name=name))
    return redirect(url_for("portal.runbooks"))
