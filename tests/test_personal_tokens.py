"""Personal tokens (issue 18, item 3): made by someone signed in for themselves, never with
more than their own role, listed and revoked by them and by admins; they end with the token
that made them, or when their directory owner leaves the mapped groups."""

from __future__ import annotations

import time

import pytest

from tests.conftest import ADMIN_TOKEN, Api
from tests.slapd import OPERATORS, PASSWORDS, slapd  # noqa: F401
from tests.test_ldap import SIGN_IN, bearer, make_app

MINE = "/api/v1/me/tokens"


def _token(api, name: str, role: str) -> Api:
    resp = api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert resp.status_code == 201, resp.get_json()
    return Api(api.client, resp.get_json()["token"])


def test_a_personal_token_has_at_most_its_owners_role(api):
    ops = _token(api, "ops", "operator")
    made = ops.post(MINE, json={"name": "laptop", "expires_in_days": 30})
    assert made.status_code == 201, made.get_json()
    laptop_json = made.get_json()
    assert (laptop_json["role"], laptop_json["owner"], laptop_json["principal"]) == \
        ("operator", "token:ops", "token:ops/token:laptop")
    laptop = Api(api.client, laptop_json["token"])
    api.create_runbook("hello")
    job = laptop.start("hello")
    assert job["started_by"] == "user:token:ops/token:laptop"
    assert laptop.post("/api/v1/runbooks", json={"name": "x", "runbook_type": "python",
                                                 "content": "print(1)\n"}).status_code == 403
    higher = ops.post(MINE, json={"name": "root", "role": "admin"})
    assert higher.status_code == 403 and "at most your own role (operator)" in \
        higher.get_json()["message"]
    assert ops.post(MINE, json={"name": "laptop"}).status_code == 409
    assert laptop.post(MINE, json={"name": "chain"}).status_code == 403
    reader = ops.post(MINE, json={"name": "ro", "role": "reader"}).get_json()
    assert {t["name"] for t in ops.get(MINE).get_json()["items"]} == {"laptop", "ro"}
    # another's list is theirs, and theirs only
    other = _token(api, "other", "author")
    assert other.get(MINE).get_json()["items"] == []
    assert other.delete(f"{MINE}/{reader['id']}").status_code == 404
    # admins see the owner, and revoke any
    listed = {t["name"]: t for t in api.get("/api/v1/tokens").get_json()["items"]}
    assert listed["laptop"]["owner"] == "token:ops" and listed["ops"]["owner"] is None
    assert api.delete(f"/api/v1/tokens/{reader['id']}").status_code == 200
    # revoked by its owner, it stops at once
    assert ops.delete(f"{MINE}/{laptop_json['id']}").status_code == 200
    assert laptop.get("/api/v1/runbooks").status_code == 401


def test_a_personal_token_ends_with_the_token_that_made_it(api):
    ops = _token(api, "ops", "author")
    laptop = Api(api.client, ops.post(MINE, json={"name": "laptop"}).get_json()["token"])
    assert laptop.get("/api/v1/runbooks").status_code == 200
    ops_id = next(t["id"] for t in api.get("/api/v1/tokens").get_json()["items"]
                  if t["name"] == "ops")
    api.delete(f"/api/v1/tokens/{ops_id}")
    resp = laptop.get("/api/v1/runbooks")
    assert resp.status_code == 401 and "personal token ended" in resp.get_json()["message"]


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "x", "role": "boss"},
                                  {"name": "x", "expires_in_days": 0}, {"name": "x", "y": 1}])
def test_bad_personal_tokens_are_refused(api, body):
    assert api.post(MINE, json=body).status_code == 400


def test_a_directory_persons_token_ends_when_they_leave_the_group(slapd):  # noqa: F811
    client = make_app(slapd, ldap_refresh_seconds=0.3).test_client()
    answer = client.post(SIGN_IN, json={"username": "bob", "password": PASSWORDS["bob"]})
    bob = bearer(answer.get_json()["token"])
    made = client.post(MINE, headers=bob, json={"name": "ci"})
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["owner"] == "user:bob (ldap)"
    ci = bearer(made.get_json()["token"])
    assert client.post(MINE, headers=bob, json={"name": "x", "role": "author"}) \
        .status_code == 403
    assert client.get("/api/v1/runbooks", headers=ci).status_code == 200
    slapd.remove_member(OPERATORS, "bob")
    time.sleep(0.4)  # past SMA_LDAP_REFRESH_SECONDS: the next use asks the directory
    resp = client.get("/api/v1/runbooks", headers=ci)
    assert resp.status_code == 401, resp.get_json()
    tokens = client.get("/api/v1/tokens", headers=bearer(ADMIN_TOKEN)).get_json()["items"]
    assert [t["revoked"] for t in tokens if t["name"] == "ci"] == [True]


def test_two_tokens_of_one_name_do_not_share_their_personal_tokens(api):
    first, second = _token(api, "ci", "author"), _token(api, "ci", "author")
    made = first.post(MINE, json={"name": "job"}).get_json()
    assert second.get(MINE).get_json()["items"] == []
    assert second.delete(f"{MINE}/{made['id']}").status_code == 404
    assert second.post(MINE, json={"name": "job"}).status_code == 201  # not "already yours"
    assert [t["id"] for t in first.get(MINE).get_json()["items"]] == [made["id"]]
    too_long = first.post(MINE, json={"name": "x" * 49})
    assert too_long.status_code == 400
