"""The seams docs/architecture.md describes: what may import what, and one runbook type
per analyzer, engine and set of runtime helpers."""

from __future__ import annotations

import argparse
import ast
import sys
from importlib import import_module
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = ("smacommon", "smaweb", "smaworker")
WEB = ("flask", "flask_smorest", "werkzeug", "gunicorn", "gevent")


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import in `path`, lazy ones inside functions included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _files(*parts: str) -> list[Path]:
    base = ROOT.joinpath(*parts)
    return [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))


def _violations(files: list[Path], forbidden: tuple[str, ...],
                top_level_only: bool = False) -> list[str]:
    """`file:line imports module` for each import of a forbidden package or module."""
    bad = []
    for path in files:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for line, module in _imports(path, top_level_only):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{shown}:{line} imports {module}")
    return bad


# (files, packages or modules they may not import, whether lazy imports inside functions
# are allowed); the reasons are in docs/architecture.md, "Import rules"
RULES = {
    "smacommon imports no other sma package and no web framework":
        (_files("smacommon"), ("smaweb", "smaworker", "smacli", *WEB), False),
    "smaworker imports neither the web service nor the CLI":
        (_files("smaworker"), ("smaweb", "smacli", *WEB), False),
    "smaweb imports neither the worker nor the CLI":
        (_files("smaweb"), ("smaworker", "smacli", "celery.worker", "celery.beat"), False),
    "the portal imports no API module (shared queries live in smaweb.queries)":
        (_files("smaweb", "portal"), ("smaweb.api",), False),
    "the API imports nothing of the portal":
        (_files("smaweb", "api"), ("smaweb.portal",), False),
    "the client and the management commands speak HTTP only":
        ([*_files("smacli", "cli"), *_files("smacli", "client.py"),
          *_files("smacli", "client_base.py"), *_files("smacli", "client_modules.py")],
         (*SERVER, *WEB, "celery", "sqlalchemy", "alembic", "marshmallow"), False),
    "smacli.main loads the server packages only inside the server commands":
        (_files("smacli", "main.py"), (*SERVER, "celery", "sqlalchemy"), True),
}


@pytest.mark.parametrize("rule", RULES)
def test_import_rule(rule):
    files, forbidden, top_level_only = RULES[rule]
    assert files, f"no files for {rule!r}: was a package moved?"
    assert _violations(files, forbidden, top_level_only) == [], rule


def test_import_rules_catch_a_violation(tmp_path):
    """The checker itself: a lazy import inside a function is found, with its line."""
    path = tmp_path / "m.py"
    path.write_text("import os\n\ndef f():\n    from smaweb.api.jobs import x\n")
    assert _imports(path) == [(1, "os"), (4, "smaweb.api.jobs")]
    assert _imports(path, top_level_only=True) == [(1, "os")]
    assert _violations([path], ("smaweb.api",)) == [f"{path}:4 imports smaweb.api.jobs"]
    assert _violations([path], ("smaweb",)) == [f"{path}:4 imports smaweb.api.jobs"]
    assert _violations([path], ("smaweb.ap",)) == []  # a package, not a name's prefix
    assert _violations([path], ("smaweb",), top_level_only=True) == []


def test_runbook_side_helpers_import_only_the_standard_library():
    """The runtime runs in the job's interpreter, maybe a runbook's own environment without
    sma installed: it may import the standard library and its own modules only (smarunbook,
    and the Python host, which the zygote imports)."""
    own = {path.stem for path in (ROOT / "smaworker" / "runtime").glob("*.py")} | {"smarunbook"}
    bad = []
    for path in _files("smaworker", "runtime"):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top not in sys.stdlib_module_names and top not in own:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert bad == []


# --- runbook types ------------------------------------------------------------------------

def test_every_runbook_type_has_an_analyzer_and_an_engine():
    from smacommon.scripts import ANALYZERS, RUNBOOK_TYPES, analyze
    from smaworker.engines import ENGINES

    assert set(RUNBOOK_TYPES) == set(ENGINES), "smacommon.scripts.ANALYZERS and " \
        "smaworker.engines.ENGINES must name the same runbook types"
    assert len({e.suffix for e in ENGINES.values()}) == len(ENGINES)
    for name, engine in ENGINES.items():
        assert engine.name == name and engine.suffix.startswith(".")
        assert callable(import_module(ANALYZERS[name]).analyze)
    # each analyzer answers for its own type: an empty script declares no parameters
    for name in RUNBOOK_TYPES:
        assert analyze(name, "") == []


def test_an_unknown_runbook_type_is_refused_with_the_known_ones():
    from smacommon.errors import ValidationFailed
    from smacommon.scripts import analyze

    with pytest.raises(ValidationFailed, match="use one of python, bash, powershell"):
        analyze("cobol", "DISPLAY 'hi'.")


def test_every_runtime_helper_belongs_to_an_engine():
    from smaworker.engines import ENGINES
    from smaworker.engines.base import RUNTIME_DIR

    claimed = {entry for engine in ENGINES.values() for entry in engine.runtime}
    for engine in ENGINES.values():
        assert engine.runtime, f"{engine.name}: name its helpers in `runtime`"
    assert {p for p in claimed if not (RUNTIME_DIR / p).exists()} == set()
    present = {p.name for p in RUNTIME_DIR.iterdir() if p.name != "__pycache__"}
    assert present - claimed == set(), "a runtime helper no engine names"


def test_the_cli_knows_the_runbook_types():
    """smacli speaks HTTP only and keeps its own list: it must agree with the server's."""
    from smacli.cli.runbooks import TYPES_BY_SUFFIX
    from smacli.main import build_parser
    from smacommon.scripts import RUNBOOK_TYPES
    from smaworker.engines import ENGINES

    assert set(TYPES_BY_SUFFIX.values()) == set(RUNBOOK_TYPES)
    for engine in ENGINES.values():
        assert TYPES_BY_SUFFIX[engine.suffix] == engine.name
    runbook = build_parser()._subparsers._group_actions[0].choices["runbook"]
    subs = runbook._subparsers._group_actions[0].choices
    for action in ("list", "import"):
        option = next(a for a in subs[action]._actions if "--type" in a.option_strings)
        assert set(option.choices) == set(RUNBOOK_TYPES)


# --- the CLI's registration ---------------------------------------------------------------

def _commands(parser: argparse.ArgumentParser, path: str = "sma"):
    """(path, parser) of every command and group under `parser`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield f"{path} {name}", child
                yield from _commands(child, f"{path} {name}")


def test_every_cli_command_registers_through_command():
    """A group is `sub.add_parser` with subcommands; each command comes from
    smacli.cli.common.command(), which alone sets a parser's defaults (func, and
    `server` for the server-side commands)."""
    from smacli.main import build_parser

    leaves = [(path, p) for path, p in _commands(build_parser())
              if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]
    assert len(leaves) > 60
    assert [path for path, p in leaves if "func" not in p._defaults] == []
    assert [path for path, p in leaves
            if p._defaults["func"] is None and not p._defaults.get("server")] == []
    elsewhere = [f"{path.relative_to(ROOT)}:{n}" for path in _files("smacli")
                 if path.name != "common.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if ".set_defaults(" in line]
    assert elsewhere == [], "register commands with command() (smacli/cli/common.py)"
