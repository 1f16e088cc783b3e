"""`sma role-binding ...`, `sma token create --role none` and assets limited to a tag, from
the command line against a real service, and the same through the Python client."""

from __future__ import annotations

import json

from smacli.client import SmaClient
from tests.conftest import ADMIN_TOKEN
from tests.test_cli import cli  # noqa: F401 - the fixture


def test_role_bindings_from_the_command_line(cli, services):  # noqa: F811
    for name, tag in (("db-backup", "db"), ("web-deploy", "web")):
        path = cli.tmp / f"{name}.sh"
        path.write_text("echo hi\n", encoding="utf-8")
        made = cli("runbook", "import", str(path), "--tag", tag, "--publish")
        assert made.returncode == 0, made.stderr
    token = cli("token", "create", "--name", "dba", "--role", "none")
    assert token.returncode == 0 and token.stdout.startswith("sma_"), token.stderr
    secret = token.stdout.strip()
    created = cli("role-binding", "create", "token:dba", "--role", "operator", "--tag", "db",
                  "-o", "json")
    assert created.returncode == 0, created.stderr
    binding = json.loads(created.stdout)
    assert binding["scope_type"] == "tag" and binding["scope_value"] == "db"
    one = cli("role-binding", "create", "token:dba", "--role", "reader", "--runbook",
              "web-deploy")
    assert one.returncode == 0 and "runbook:web-deploy" in one.stdout
    listed = cli("role-binding", "list", "--principal", "token:dba")
    assert listed.returncode == 0 and "tag:db" in listed.stdout \
        and "runbook:web-deploy" in listed.stdout
    bad = cli("role-binding", "create", "token:dba", "--role", "reader", "--runbook", "ghost")
    assert bad.returncode == 1 and "Runbook 'ghost' not found" in bad.stderr
    mine = cli("runbook", "list", "-o", "json", env={"SMA_TOKEN": secret})
    assert {r["name"] for r in json.loads(mine.stdout)} == {"db-backup", "web-deploy"}
    refused = cli("runbook", "start", "web-deploy", env={"SMA_TOKEN": secret})
    assert refused.returncode == 1 and "not found" in refused.stderr
    assert cli("runbook", "start", "db-backup", env={"SMA_TOKEN": secret}).returncode == 0
    assert cli("role-binding", "list", env={"SMA_TOKEN": secret}).returncode == 1
    gone = cli("role-binding", "delete", binding["id"])
    assert gone.returncode == 0 and binding["id"] in gone.stderr
    mine = cli("runbook", "list", "-o", "json", env={"SMA_TOKEN": secret})
    assert {r["name"] for r in json.loads(mine.stdout)} == {"web-deploy"}
    limited = cli("credential", "set", "DbAdmin", "-u", "sa", "--runbook-tag", "db", "-o",
                  "json", stdin="pw-1234567\n")
    assert limited.returncode == 0 and json.loads(limited.stdout)["runbook_tag"] == "db"


def test_the_python_client_manages_bindings(services):
    sma = SmaClient(services["api_url"], ADMIN_TOKEN)
    binding = sma.create_role_binding("group:cn=dba,ou=groups,dc=example,dc=org", "operator",
                                      "tag", "db")
    assert binding.principal.startswith("group:") and binding.role == "operator"
    assert sma.get_role_binding(binding.id).scope_value == "db"
    assert [b.id for b in sma.role_bindings(principal=binding.principal)] == [binding.id]
    sma.delete_role_binding(binding.id)
    assert list(sma.role_bindings()) == []
    var = sma.create_variable("Limited", 1, runbook_tag="db")
    assert var.runbook_tag == "db"


def test_personal_tokens_from_the_command_line(cli, services):  # noqa: F811
    ops = cli("token", "create", "--name", "ops", "--role", "operator").stdout.strip()
    as_ops = {"SMA_TOKEN": ops}
    made = cli("token", "new", "laptop", env=as_ops)
    assert made.returncode == 0 and made.stdout.startswith("sma_"), made.stderr
    refused = cli("token", "new", "root", "--role", "admin", env=as_ops)
    assert refused.returncode == 1 and "at most your own role" in refused.stderr
    mine = cli("token", "mine", "-o", "json", env=as_ops)
    laptop = json.loads(mine.stdout)[0]
    assert (laptop["name"], laptop["role"], laptop["owner"]) == ("laptop", "operator",
                                                                 "token:ops")
    assert cli("runbook", "list", env={"SMA_TOKEN": made.stdout.strip()}).returncode == 0
    assert cli("token", "revoke", laptop["id"], "--mine", env=as_ops).returncode == 0
    gone = cli("runbook", "list", env={"SMA_TOKEN": made.stdout.strip()})
    assert gone.returncode == 1
