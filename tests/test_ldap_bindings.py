"""Role bindings for directory people and their groups, against a real slapd: a group mapped
to `none` signs its people in with nothing but what bindings give them or their groups."""

from __future__ import annotations

from tests.conftest import ADMIN_TOKEN
from tests.slapd import ADMINS, OPERATORS, OTHERS, PASSWORDS, slapd  # noqa: F401
from tests.test_ldap import SIGN_IN, bearer, make_app

ADMIN = bearer(ADMIN_TOKEN)


def _runbooks(client) -> None:
    for name, tags in (("db-backup", ["db"]), ("web-deploy", ["web"]), ("cache", [])):
        assert client.post("/api/v1/runbooks", headers=ADMIN, json={
            "name": name, "runbook_type": "python", "content": "print(1)\n",
            "tags": tags}).status_code == 201
        assert client.post(f"/api/v1/runbooks/{name}/publish", headers=ADMIN).status_code == 201


def _bind(client, principal, scope_type, value=None, role="operator") -> dict:
    resp = client.post("/api/v1/role-bindings", headers=ADMIN, json={
        "principal": principal, "role": role, "scope_type": scope_type, "scope_value": value})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _visible(client, headers) -> set[str]:
    page = client.get("/api/v1/runbooks", headers=headers)
    assert page.status_code == 200, page.get_json()
    return {r["name"] for r in page.get_json()["items"]}


def test_group_and_person_bindings_of_a_directory_person(slapd):  # noqa: F811
    client = make_app(slapd, role_mapping={ADMINS: "admin", OPERATORS: "operator",
                                           OTHERS: "none"}).test_client()
    _runbooks(client)
    # the group as an admin might type it: case and spaces are not the directory's business
    binding = _bind(client, "group:CN=Others, OU=groups, DC=example, DC=org", "tag", "db")
    assert binding["principal"] == f"group:{OTHERS}"
    _bind(client, "user:carol (ldap)", "runbook", "cache", role="reader")
    answer = client.post(SIGN_IN, json={"username": "carol", "password": PASSWORDS["carol"]})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["role"] == "none"
    carol = bearer(answer.get_json()["token"])
    assert _visible(client, carol) == {"db-backup", "cache"}
    assert client.post("/api/v1/runbooks/db-backup/start", headers=carol,
                       json={}).status_code == 201
    # a reader's binding over cache: she sees it, she cannot start it
    assert client.post("/api/v1/runbooks/cache/start", headers=carol, json={}).status_code == 404
    assert client.post("/api/v1/runbooks/web-deploy/start", headers=carol,
                       json={}).status_code == 404
    assert client.get("/api/v1/variables", headers=carol).status_code == 403
    # bob, an operator by his group, reaches everything as before
    bob = bearer(client.post(SIGN_IN, json={"username": "bob", "password": PASSWORDS["bob"]})
                 .get_json()["token"])
    assert _visible(client, bob) == {"db-backup", "web-deploy", "cache"}


def test_a_person_in_no_mapped_group_still_cannot_sign_in(slapd):  # noqa: F811
    client = make_app(slapd).test_client()  # others is mapped to nothing here
    _bind(client, f"group:{OTHERS}", "everything")
    answer = client.post(SIGN_IN, json={"username": "carol", "password": PASSWORDS["carol"]})
    assert answer.status_code == 403 and "SMA_ROLE_MAPPING" in answer.get_json()["message"]
