"""Extensions, created here and bound to the app with `init_app`."""

from __future__ import annotations

from flask import Flask, current_app, g, request
from flask_smorest import Blueprint
from sqlalchemy.orm import Session, sessionmaker
from webargs.flaskparser import FlaskParser

from smacommon.db import reading, session_factory

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Database:
    """One SQLAlchemy session per request, closed when the request ends."""

    def __init__(self) -> None:
        self.factory: sessionmaker[Session] | None = None

    def init_app(self, app: Flask) -> None:
        self.factory = session_factory(app.config["SMA_SETTINGS"].effective_database_url)
        app.extensions["sma_db"] = self
        app.teardown_appcontext(self._close)

    @property
    def session(self) -> Session:
        """The request's session; a request that only reads never takes the write lock."""
        if "sma_session" not in g:
            session = current_app.extensions["sma_db"].factory()
            if request.method in READ_METHODS:
                reading(session)
            g.sma_session = session
        return g.sma_session

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("sma_session", None)
        if session is not None:
            session.close()


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    # let each schema decide (ours raise on unknown fields, so typos are caught everywhere)
    DEFAULT_UNKNOWN_BY_LOCATION: dict = {}


class SmaBlueprint(Blueprint):
    """A flask-smorest blueprint whose invalid input is a 400, not webargs' 422."""

    ARGUMENTS_PARSER = _Parser()


db = Database()
