"""Asset access for Bash runbooks (and anything else that can run a command):

    sma_assets_cli.py variable NAME                 print the value (strings as they are)
    sma_assets_cli.py set-variable NAME JSON        set the value
    sma_assets_cli.py credential NAME [FIELD]       print {"username","password"} or a field
    sma_assets_cli.py connection NAME [FIELD]       print the fields as JSON, or one field
    sma_assets_cli.py certificate NAME              print the certificate, base64
    sma_assets_cli.py start NAME [JSON] [--wait] [-- ARG ...]
                                                    start a child runbook (JSON: its named
                                                    parameters; after --: its positional
                                                    arguments): print its job id, or
                                                    (--wait) its output, a line each
    sma_assets_cli.py id-token AUDIENCE [LIFETIME]  print the job's identity token (a JWT
                                                    for AUDIENCE, valid LIFETIME seconds)

Errors go to stderr with exit code 1 (3 for an asset that does not exist).
"""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from smarunbook import assets  # noqa: E402


def _show(value) -> None:
    print(value if isinstance(value, str) else json.dumps(value))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    verb, name, rest = argv[0], argv[1], argv[2:]
    try:
        if verb == "variable":
            _show(assets.get_automation_variable(name))
        elif verb == "set-variable":
            if not rest:
                print("set-variable needs a value (JSON)", file=sys.stderr)
                return 2
            try:
                value = json.loads(rest[0])
            except ValueError:
                value = rest[0]  # a bare word is a string
            assets.set_automation_variable(name, value)
        elif verb in ("credential", "connection"):
            getter = (assets.get_automation_credential if verb == "credential"
                      else assets.get_automation_connection)
            found = getter(name)
            if rest:
                if rest[0] not in found:
                    print(f"{verb} {name!r} has no field {rest[0]!r}", file=sys.stderr)
                    return 2
                _show(found[rest[0]])
            else:
                _show(found)
        elif verb == "start":
            return _start(name, rest)
        elif verb == "id-token":
            return _id_token(name, rest)
        elif verb == "certificate":
            print(base64.b64encode(assets.get_automation_certificate(name)).decode())
        else:
            print(f"unknown verb {verb!r}\n{__doc__}", file=sys.stderr)
            return 2
    except assets.AutomationAssetNotFound as exc:
        print(f"AutomationAssetNotFound: {exc}", file=sys.stderr)
        return 3
    except assets.AutomationAssetError as exc:
        print(f"AutomationAssetError: {exc}", file=sys.stderr)
        return 1
    return 0


def _id_token(audience: str, rest: list[str]) -> int:
    from smarunbook.identity import id_token

    if len(rest) > 1 or (rest and not rest[0].isdigit()):
        print("id-token: AUDIENCE [LIFETIME], LIFETIME a number of seconds", file=sys.stderr)
        return 2
    print(id_token(audience, int(rest[0]) if rest else None))
    return 0


def _start(name: str, rest: list[str]) -> int:
    from smarunbook import jobs

    arguments = None
    if "--" in rest:  # what follows is the child's positional arguments, as they are
        at = rest.index("--")
        rest, arguments = rest[:at], rest[at + 1:]
    wait = "--wait" in rest
    given = [a for a in rest if a != "--wait"]
    try:
        parameters = json.loads(given[0]) if given else {}
    except ValueError:
        print(f"start: parameters must be a JSON object, not {given[0]!r}", file=sys.stderr)
        return 2
    if not isinstance(parameters, dict):
        print("start: parameters must be a JSON object", file=sys.stderr)
        return 2
    try:
        result = jobs.start_runbook(name, parameters, wait=wait, arguments=arguments)
    except (RuntimeError, jobs.ChildJobFailed) as exc:
        print(exc, file=sys.stderr)
        return 1
    for item in (result if wait else [result]):
        _show(item)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
