"""Extensions, created here and bound to the app with `init_app`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Blueprint
from sqlalchemy.orm import Session, sessionmaker
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.routing import IntegerConverter, ValidationError

from smacommon import strictjson
from smacommon.db import is_transient, reading, session_factory
from smacommon.schemas.common import DB_INT_MAX

F = TypeVar("F", bound=Callable[..., Any])
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
        if session is None:
            return
        try:
            session.close()
        except Exception as exc:
            if not is_transient(exc):
                raise
            # the connection was lost after the request's work (its ROLLBACK failed):
            # nothing is left to undo, and the answer is made; let go of the connection
            session.invalidate()


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, read by sma's rules (no NaN, no endless nesting) and always written as
    valid JSON."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strictjson.loads(s)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:  # a NaN stored before sma refused them: it goes out as null
            return super().dumps(strictjson.finite(obj), **kwargs)


class IntConverter(IntegerConverter):
    """`<int:...>` in a route: at most what the database's INTEGER columns hold, so a longer
    number is a 404 (no such row), never an overflow in the database or in int()."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = DB_INT_MAX, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> int:
        if len(value) > len(str(DB_INT_MAX)) + 1:
            raise ValidationError()
        return super().to_python(value)


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    # let each schema decide (ours raise on unknown fields, so typos are caught everywhere)
    DEFAULT_UNKNOWN_BY_LOCATION: dict = {}

    def load_form(self, req, schema) -> Any:
        """A form's fields and, in a multipart/form-data body, its files, as one mapping (a
        view declares its upload's fields and files in one schema)."""
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)

    def _raw_load_json(self, req) -> Any:
        """The body by sma's JSON rules: a refused one is a 400 that says why."""
        if not is_json_request(req):
            return core.missing
        return strictjson.loads(req.get_data(cache=True))


class SmaBlueprint(Blueprint):
    """A flask-smorest blueprint whose invalid input is a 400, not webargs' 422, and whose
    operations carry the ids `operation_id` gives them."""

    ARGUMENTS_PARSER = _Parser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_operation_id_doc)

    @staticmethod
    def operation_id(name: str | None = None, **by_method: str) -> Callable[[F], F]:
        """The operation's `operationId`: the stable name a generated client gives it (one a
        method, put=..., patch=..., for a function serving several)."""
        if (name is None) == (not by_method):
            raise TypeError("operation_id takes a name, or names by method")

        def mark(func: F) -> F:
            func._apidoc = {**getattr(func, "_apidoc", {}),  # type: ignore[attr-defined]
                            "operation_id": name or by_method}
            return func

        return mark

    @staticmethod
    def _prepare_operation_id_doc(doc: dict, doc_info: dict, *, method: str,
                                  **kwargs: Any) -> dict:
        given = doc_info.get("operation_id")
        name = given.get(method) if isinstance(given, dict) else given
        if name:
            doc["operationId"] = name
        return doc


db = Database()
