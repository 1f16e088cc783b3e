"""What the asset modules share: the crypto of the app, listing by name."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from smacommon.crypto import Crypto, get_crypto
from smaweb.extensions import db
from smaweb.pagination import keyset_page


def crypto() -> Crypto:
    return get_crypto(current_app.config["SMA_SETTINGS"])


def page(model, args) -> dict:
    """A page of assets, newest first."""
    items, cursor = keyset_page(select(model), model.created_at, model.id, args["limit"],
                                args["cursor"], db.session.scalars)
    return {"items": items, "next_cursor": cursor}


def commit(item):
    db.session.commit()
    return item
