"""PowerShell literals and integer ranges: defaults read as PowerShell 7 reads them, literals it
refuses refused at publish (400 with line and column, never a 500), and starts checked against
the range of each parameter's integer type."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smacommon.errors import ScriptError, ValidationFailed
from smacommon.parameters import INT_MAX, normalize_declarations, validate
from smacommon.scripts.powershell import analyze
from smacommon.scripts.powershell.literals import number
from smacommon.scripts.powershell.nodes import LiteralError


def default_of(literal: str) -> object:
    (decl,) = analyze(f"param($Value = {literal})\n")
    return decl.get("default", "<none>")


def refused(script: str) -> ScriptError:
    with pytest.raises(ScriptError) as caught:
        analyze(script)
    assert caught.value.errors == {"content": [caught.value.message]}
    return caught.value


# --- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("literal", "value"), [
    # about_Numeric_Literals' own table of examples
    ("100", 100), ("100u", 100), ("100D", 100), ("100l", 100), ("100uL", 100), ("100us", 100),
    ("100uy", 100), ("100y", 100), ("1e2", 100.0), ("1.e2", 100.0), ("0x1e2", 482),
    ("0x1e2L", 482), ("0x1e2D", 7725), ("482D", 482), ("482gb", 517543559168),
    ("482ngb", 517543559168), ("0x1e2lgb", 517543559168), ("0b1011011", 91),
    ("0xFFFFs", -1), ("0xFFFFFFFF", -1), ("0xFFFFFFFFu", 4294967295), ("1kb", 1024),
    ("1.30Dmb", 1363148.8), ("0x10Gb", 17179869184), ("0x12Lpb", 20266198323167232),
    ("1.2L", 1), ("1.2345e1L", 12), ("1.2345e-5L", 0),
    # the top bit is a sign only at the type's own width; a leading 0 keeps the value positive
    ("0x7FFFFFFF", 2147483647), ("0x80000000", -2147483648), ("0x0FFFFFFFF", 4294967295),
    ("0xFFFFFFFFFFFFFFFF", -1), ("0xFFy", -1), ("0x80y", -128), ("0xFFFFFFFFFFFFFFFFul", 2**64 - 1),
    ("0b11111111", 255), ("0b" + "1" * 32, -1), ("0b0" + "1" * 32, 2**32 - 1),
    ("0b" + "1" * 32 + "u", 2**32 - 1),
    # no suffix: int, then long, then decimal, then double
    ("2147483648", 2147483648), ("9223372036854775808", 9223372036854775808),
    ("79228162514264337593543950336", float(79228162514264337593543950336)),
    ("2.5l", 2), ("3.5l", 4),  # rounded half to even, as .NET's Math.Round
    ("1e400", float("inf")), (".5", 0.5), ("007", 7), ("9" * 5000 + "n", None),
])
def test_numbers_as_powershell_reads_them(literal: str, value: object) -> None:
    assert number(literal) == value
    assert type(number(literal)) is type(value)


@pytest.mark.parametrize(("literal", "why"), [
    ("128y", "[sbyte] (-128 to 127)"), ("256uy", "[byte] (0 to 255)"),
    ("-1uy", None), ("32768s", "[int16]"), ("65536us", "[uint16]"),
    ("9223372036854775808l", "[int64]"), ("18446744073709551616u", "[uint] and [ulong]"),
    ("1usgb", "[uint16]"), ("0x1FFFFFFFFFFFFFFFF", "[long]"), ("1" + "0" * 400, "[double]"),
    ("1e400l", "[double]"), ("1e30d", "[decimal]"), ("5lu", None), ("0x", None),
])
def test_numbers_powershell_refuses(literal: str, why: str | None) -> None:
    with pytest.raises(LiteralError) as caught:
        number(literal)
    assert caught.value.message.startswith(f"the numeric constant {literal[:40]}")
    if why:
        assert why in caught.value.message


@pytest.mark.parametrize(("literal", "value"), [
    ("0b101", 5), ("0xFFy", -1), ("100Lgb", 107374182400), ("-0xFFFFFFFF", 1), ("1usgb", None),
    ("9" * 50 + "n", int("9" * 50)),
    ("1e400", "<none>"), ("9" * 150 + "n", "<none>"),  # infinity, 150 digits: no JSON sma keeps
])
def test_number_defaults(literal: str, value: object) -> None:
    if value is None:
        error = refused(f"param(\n  $Value = {literal}\n)\n")
        assert "the numeric constant 1usgb is not valid" in error.message
        assert (error.line, error.column) == (2, 12)
    else:
        assert default_of(literal) == value


def publish(api, content: str):
    """Create a PowerShell runbook and publish it: the publish response."""
    rb = api.create_runbook(content=content, runbook_type="powershell", publish=False)
    return api.post(f"/api/v1/runbooks/{rb['name']}/publish")


def test_a_number_of_5000_digits_is_a_400_not_a_500(api) -> None:
    resp = publish(api, "param([int]$Count = " + "9" * 5000 + ")\n$Count\n")
    assert resp.status_code == 400
    assert "beyond the range of [double]" in resp.get_json()["message"]
    assert "line 1, column 21" in resp.get_json()["message"]


# --- strings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("literal", "value"), [
    ('"`0`a`b`e`f`n`r`t`v"', "\0\a\b\x1b\f\n\r\t\v"), ('"`u{41}`u{e9}"', "Aé"),
    ('"`u{1F600}"', "😀"), ('"`u{D83D}`u{DE00}"', "😀"), ('"`u{00000A}"', "\n"),
    ('"``u{zz}"', "`u{zz}"), ('"`q"', "q"), ('"a""b"', 'a"b'), ("'a''b'", "a'b"),
    ('"a\u201c\u201db"', "a\u201db"),  # PowerShell takes curly quotes for quotes too
    ("'`u{zz}'", "`u{zz}"), ('@"\nline `u{41}\n"@', "line A"), ("@'\n`u{zz}\n'@", "`u{zz}"),
    ('@"\r\ncrlf\r\n"@', "crlf"), ('"`$HOME"', "$HOME"),
])
def test_string_defaults(literal: str, value: str) -> None:
    assert default_of(literal) == value


@pytest.mark.parametrize("literal", ['"$HOME"', '"$(1)"', '"a${b}c"', '"`u{D800}"'])
def test_strings_without_a_fixed_text_leave_the_default_out(literal: str) -> None:
    assert default_of(literal) == "<none>"  # computed at run time, or no text (a lone surrogate)


@pytest.mark.parametrize(("literal", "fragment", "line", "column"), [
    ('"`u{zz}"', "bad Unicode escape `u{zz}: 'z' is not a hex digit", 2, 18),
    ('"x`u{}"', "bad Unicode escape `u{}: write 1 to 6 hex digits", 2, 16),
    ('"`u{110000}"', "beyond U+10FFFF", 2, 18),
    ('"`u{1234567}"', "more than 6 hex digits", 2, 24),
    ('"`u{41"', "missing its closing '}'", 2, 15),
    ('"`u2195"', "bad Unicode escape `u: write `u{XXXX}", 2, 15),
    ('@"\nfine\n`u{zz}\n"@', "'z' is not a hex digit", 4, 4),
])
def test_bad_escapes_in_a_default_name_line_and_column(literal: str, fragment: str, line: int,
                                                       column: int) -> None:
    error = refused(f"param(\n    $Value = {literal}\n)\n")  # the literal starts at 2:14
    assert error.message.startswith("PowerShell syntax error: ")
    assert fragment in error.message
    assert (error.line, error.column) == (line, column)


@pytest.mark.parametrize("script", [
    'Write-Output "value: `u{zz}"\n',
    '$x = 1\nif ($x) {\n    $y = "$x `u{110000}"\n}\n',
    'Write-Output "$(Get-Date) `u{}"\n',
])
def test_a_bad_escape_anywhere_is_refused(script: str) -> None:
    # PowerShell's parser refuses the whole script for it: the job could never run
    assert "bad Unicode escape" in refused(script).message


@pytest.mark.parametrize("script", [
    "# a comment: `u{zz}\n'verbatim `u{zz}'\n@'\n`u{zz}\n'@\n",
    'Write-Output "escaped ``u{zz}"\n',
    'Write-Output "fine `u{1F600}"\n',
])
def test_what_is_no_escape_is_not_refused(script: str) -> None:
    assert analyze(script) == []


def test_a_bad_escape_is_a_400_with_line_and_column(api) -> None:
    resp = publish(api, "param(\n    [string]$Greeting = \"`u{zz}\"\n)\n$Greeting\n")
    assert resp.status_code == 400
    body = resp.get_json()
    assert "bad Unicode escape `u{zz}" in body["message"]
    assert "(line 2, column 29)" in body["message"]
    assert body["errors"] == {"content": [body["message"]]}


# --- fuzz: whatever the literal, a declaration or a ScriptError, never another exception -----


_PIECES = ["`", "u", "{", "}", "`u{", "0", "1", "7", "9", "a", "f", "F", "z", "x", "b", "e",
           "E", "+", "-", ".", "$", '"', "'", " ", "é", "😀", "\n", "kb", "MB", "l", "ul", "y",
           "uy", "s", "us", "n", "d", "@", "(", ")", "\u201c", "\u2019", "10FFFF", "D800"]


def _check_literal(literal: str) -> None:
    try:
        declared = analyze(f"param($Value = {literal})\n")
    except (ScriptError, ValidationFailed):
        return
    json.dumps(declared, allow_nan=False).encode("utf-8")  # what the API will write back


@given(literal=st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_default_literals(literal: str) -> None:
    _check_literal(literal)
    _check_literal(f'"{literal}"')
    _check_literal(f"@\"\n{literal}\n\"@")


@given(literal=st.from_regex(
    r"-?(0x[0-9a-fA-F]{0,20}|0b[01]{0,70}|[0-9]{0,25}(\.[0-9]{0,5})?(e[-+]?[0-9]{0,4})?)"
    r"(ul|us|uy|u|l|s|y|d|n|lu)?([kmgtp]b)?", fullmatch=True))
@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_numbers(literal: str) -> None:
    try:
        value = number(literal.lstrip("-"))
    except LiteralError as exc:
        assert exc.message.startswith("the numeric constant")
    else:
        assert value is None or isinstance(value, int | float)
    _check_literal(literal)


# --- integer ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(("type_", "minimum", "maximum"), [
    ("int", -2**31, 2**31 - 1), ("Int32", -2**31, 2**31 - 1), ("System.Int32", -2**31, 2**31 - 1),
    ("byte", 0, 255), ("sbyte", -128, 127), ("int16", -32768, 32767), ("short", -32768, 32767),
    ("uint16", 0, 65535), ("ushort", 0, 65535), ("uint32", 0, 2**32 - 1), ("uint", 0, 2**32 - 1),
    ("uint64", 0, INT_MAX), ("ulong", 0, INT_MAX), ("Nullable[int16]", -32768, 32767),
    ("System.Nullable[System.Byte]", 0, 255),
])
def test_integer_types_declare_their_range(type_: str, minimum: int, maximum: int) -> None:
    (decl,) = analyze(f"param([{type_}]$N)\n")
    assert (decl["type"], decl["minimum"], decl["maximum"]) == ("int", minimum, maximum)


@pytest.mark.parametrize("type_", ["long", "int64", "System.Int64", "bigint", "double", "int[]"])
def test_wide_types_declare_no_range(type_: str) -> None:
    (decl,) = analyze(f"param([{type_}]$N)\n")
    assert "minimum" not in decl and "maximum" not in decl


@pytest.mark.parametrize(("declaration", "fragment"), [
    ("[int]$Count = 3000000000", "default 3000000000 is beyond the range of [int] "
                                 "(-2147483648 to 2147483647)"),
    ("[byte]$Level = -1", "default -1 is beyond the range of [byte] (0 to 255)"),
    ("[int16]$Small = 1e10", "default 10000000000.0 is beyond the range of [int16]"),
])
def test_a_default_out_of_range_is_refused(declaration: str, fragment: str) -> None:
    error = refused(f"param(\n    {declaration}\n)\n")
    assert fragment in error.message
    assert error.line == 2


def test_defaults_in_range_are_kept_and_mandatory_ones_ignored() -> None:
    by_name = {d["name"]: d for d in analyze(
        "param([byte]$B = 255, [int]$I = -2147483648, [long]$L = 3000000000,\n"
        "      [Parameter(Mandatory)][int]$M = 3000000000, [uint64]$U = 0xFFFFFFFFFFFFFFFFul)\n")}
    assert by_name["B"]["default"] == 255
    assert by_name["I"]["default"] == -2**31
    assert by_name["L"]["default"] == 3000000000
    assert "default" not in by_name["M"]
    assert "default" not in by_name["U"]  # PowerShell holds it; sma's 64-bit signed int cannot


def test_start_refuses_a_value_out_of_range(api) -> None:
    rb = api.create_runbook(content="param([int]$Count, [byte]$Level, [long]$Big)\n$Count\n",
                            runbook_type="powershell")
    version = api.get(f"/api/v1/runbooks/{rb['name']}/versions/1").get_json()
    assert version["parameters"][0] == {"name": "Count", "type": "int", "mandatory": False,
                                        "minimum": -2**31, "maximum": 2**31 - 1}
    for parameters, fragment in [
        ({"Count": 2**31}, "Count must be an integer from -2147483648 to 2147483647; "
                           "got integer 2147483648"),
        ({"Level": 256}, "Level must be an integer from 0 to 255"),
        ({"Level": "-1"}, "Level must be an integer from 0 to 255"),
    ]:
        resp = api.post(f"/api/v1/runbooks/{rb['name']}/start", json={"parameters": parameters})
        assert resp.status_code == 400, parameters
        assert fragment in resp.get_json()["message"]
        assert list(resp.get_json()["errors"]["parameters"]) == list(parameters)
    job = api.start(rb["name"], {"Count": 2**31 - 1, "Level": 0, "Big": 2**40})
    assert job["parameters"] == {"Count": 2**31 - 1, "Level": 0, "Big": 2**40}


def test_names_match_case_insensitively_and_may_not_collide(api) -> None:
    rb = api.create_runbook(content="param([string]$name)\n$name\n", runbook_type="powershell")
    assert api.start(rb["name"], {"Name": "bound"})["parameters"] == {"name": "bound"}
    resp = api.post(f"/api/v1/runbooks/{rb['name']}/start",
                    json={"parameters": {"Name": "a", "NAME": "b"}})
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert "both give name (names ignore case); give it once" in message
    assert "Name and NAME" in message or "NAME and Name" in message


def test_validate_collision_and_range_directly() -> None:
    declared = [{"name": "Count", "type": "int", "mandatory": False, "minimum": 0,
                 "maximum": 10}]
    assert validate(declared, {"count": "7"}) == {"Count": 7}
    with pytest.raises(ValidationFailed) as caught:
        validate(declared, {"count": 1, "COUNT": 2})
    assert caught.value.errors == {"parameters": {"COUNT": ["Also gives Count."]}}


@pytest.mark.parametrize(("item", "fragment"), [
    ({"name": "n", "type": "string", "minimum": 1}, "apply only to an int"),
    ({"name": "n", "type": "int", "minimum": "1"}, "minimum must be an integer"),
    ({"name": "n", "type": "int", "maximum": 2**63}, "maximum must be an integer"),
    ({"name": "n", "type": "int", "minimum": True}, "minimum must be an integer"),
    ({"name": "n", "type": "int", "minimum": 5, "maximum": 1}, "minimum is above maximum"),
    ({"name": "n", "type": "int", "minimum": 0, "maximum": 9, "default": 10},
     "n must be an integer from 0 to 9"),
])
def test_explicit_ranges_are_checked(item: dict, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_declarations([item])
    assert fragment in caught.value.message


def test_explicit_range_round_trips() -> None:
    decl = {"name": "n", "type": "int", "mandatory": False, "minimum": 0, "maximum": 255,
            "default": 3}
    assert normalize_declarations([decl]) == [decl]
    assert normalize_declarations([{"name": "n", "type": "int", "maximum": 9}]) == [
        {"name": "n", "type": "int", "mandatory": False, "minimum": -2**63, "maximum": 9}]
