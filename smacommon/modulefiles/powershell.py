"""PowerShell modules uploaded as a zip: the module manifest (.psd1) names the module (its
base name) and gives its version (ModuleVersion). The manifest is PowerShell data syntax,
read with the tree-sitter grammar sma parses runbooks with; it is never run."""

from __future__ import annotations

import codecs
import re
import zipfile
from pathlib import PurePosixPath
from typing import Any

from smacommon.errors import ScriptError
from smacommon.modulefiles.archives import member_path, open_zip, read_zip_member, refuse
from smacommon.modulefiles.types import ModuleFile, check_module_name, normalize
from smacommon.scripts.powershell.literals import literal_value
from smacommon.scripts.powershell.nodes import error_nodes, get_parser, position, text

# System.Version, as ModuleVersion takes it: two to four numbers
_VERSION = re.compile(r"\d{1,9}(\.\d{1,9}){1,3}")
_WRAPPERS = {"pipeline", "pipeline_chain", "logical_expression", "bitwise_expression",
             "comparison_expression", "additive_expression", "multiplicative_expression",
             "format_expression", "range_expression", "array_literal_expression",
             "unary_expression"}


def find_manifest(archive: zipfile.ZipFile) -> tuple[str, str, str]:
    """(member, module name, folder of the module in the zip) of the zip's one module
    manifest: <Name>/<Name>.psd1, <Name>/<Version>/<Name>.psd1, or a lone <Name>.psd1 at
    the top."""
    foldered, top = [], []
    for member in archive.namelist():
        path = member_path(member)
        if path.suffix.lower() != ".psd1":
            continue
        if len(path.parts) == 1:
            top.append((member, path.stem, ""))
        elif len(path.parts) in (2, 3) and path.parts[0].lower() == path.stem.lower():
            foldered.append((member, path.stem, str(path.parent)))
    found = foldered or top
    if len(found) == 1:
        return found[0]
    if not found:
        raise refuse("The zip has no module manifest: a PowerShell module zip holds "
                     "<Name>/<Name>.psd1 (or <Name>.psd1 at its top), as New-ModuleManifest "
                     "makes it.")
    names = ", ".join(sorted(m for m, _, _ in found))
    raise refuse(f"The zip has several module manifests ({names}); upload one module per "
                 "zip, in a folder named after it (<Name>/<Name>.psd1).")


def _decode(raw: bytes, member: str) -> str:
    """A manifest's text: UTF-8 or, with their byte order mark, UTF-16 (what Windows
    PowerShell 5.1's New-ModuleManifest writes)."""
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refuse(f"{member} is neither UTF-8 nor UTF-16 with a byte order mark.") from None


def _hashtable(root: Any, source: bytes, member: str) -> Any:
    """The manifest's one top-level hashtable literal (@{ ... })."""
    statements = [n for n in root.named_children if n.type != "comment"]
    nodes = [n for s in statements for n in (s.named_children if s.type == "statement_list"
                                              else [s]) if n.type != "comment"]
    node = nodes[0] if len(nodes) == 1 else None
    while node is not None and node.type in _WRAPPERS:
        named = [c for c in node.named_children if c.type != "comment"]
        node = named[0] if len(named) == 1 else None
    if node is None or node.type != "hash_literal_expression":
        raise refuse(f"{member} is not a module manifest: it must hold one hashtable, "
                     "@{ ModuleVersion = '1.0.0'; ... }, and nothing else.")
    return node


def read_module_version(raw: bytes, member: str) -> str:
    """The manifest's ModuleVersion (a quoted System.Version, normalized as PowerShell reads
    it: 1.02.0 is 1.2.0)."""
    source = _decode(raw, member).encode("utf-8")
    root = get_parser().parse(source).root_node
    errors = error_nodes(root)
    if errors:
        line, column = position(errors[0], source)
        raise refuse(f"{member} does not parse as PowerShell data (line {line}, column "
                     f"{column}).")
    values = []
    for entry in _hashtable(root, source, member).named_children:
        body = entry.named_children if entry.type == "hash_literal_body" else []
        for item in body:
            named = [c for c in item.named_children if c.type != "comment"]
            if item.type != "hash_entry" or len(named) != 2:
                continue
            key = text(named[0], source).strip().strip("'\"")
            if key.lower() == "moduleversion":
                values.append(named[1])
    if len(values) != 1:
        raise refuse(f"{member} has {'no' if not values else 'more than one'} ModuleVersion; "
                     "a module manifest gives it once, e.g. ModuleVersion = '1.0.0'.")
    try:
        is_literal, value = literal_value(values[0], source)
    except ScriptError as exc:
        raise refuse(f"{member}: {exc.message}") from None
    if not is_literal or not isinstance(value, str) or not _VERSION.fullmatch(value.strip()):
        raise refuse(f"{member}'s ModuleVersion must be a quoted version of two to four "
                     "numbers, e.g. ModuleVersion = '1.2.3'.")
    return ".".join(str(int(part)) for part in value.strip().split("."))


def inspect_powershell(filename: str, data: bytes, unpacked_limit: int) -> ModuleFile:
    """A PowerShell module zip: name and version from its manifest."""
    archive = open_zip(data, unpacked_limit, "PowerShell module")
    member, name, folder = find_manifest(archive)
    check_module_name(name)
    version = read_module_version(read_zip_member(archive, member), member)
    parts = PurePosixPath(folder).parts
    if len(parts) == 2 and _normal(parts[1]) != version:
        raise refuse(f"{member} is in a folder named {parts[1]!r}, but its ModuleVersion is "
                     f"{version}; PowerShell loads a module only from a folder named after "
                     "its version.")
    return ModuleFile(name, normalize(name), version, "powershell", filename)


def _normal(folder: str) -> str:
    if not _VERSION.fullmatch(folder):
        return folder
    return ".".join(str(int(part)) for part in folder.split("."))
