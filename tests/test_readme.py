"""The README's shell examples, run as written against a real `sma up` (a doc test).

Every ```sh or ```bash block of README.md follows one marker line (an HTML comment, unseen
on GitHub):

    <!-- doctest: run N -->         run it: blocks run by N, then in the README's order
    <!-- doctest: skip: REASON -->  not run here, and REASON says why (make, docker, apt,
                                    other hosts, a file of your own to edit)

A block without a marker fails the test, so none is left out silently. The blocks run one
after the other, each in its own `bash -e -o pipefail` with a timeout, as one reader's
terminal session: in one folder, with the variables an earlier block set. What the test
changes, and nothing else: the README's address 127.0.0.1:8080 becomes the test's port;
standard input is the admin token `sma up` printed, for the first prompt that asks for it;
`curl` fails on an HTTP error (`--fail-with-body`), so a refused request fails its block;
HOME and XDG_CONFIG_HOME are the test's folder; `sma` is the one of this interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.test_sma_up import Up

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK_TIMEOUT = 60
MARKER = re.compile(r"<!--\s*doctest:\s*(.*?)\s*-->")

# Runs before each block: an HTTP error fails the block, and the variables (not the
# environment of the test) that earlier blocks set are back.
PRELUDE = """\
curl() { command curl --fail-with-body "$@"; }
__sma_base=" $(compgen -v | tr '\\n' ' ') __sma_base __sma_v "
[ -f "$SMA_DOCTEST_STATE" ] && . "$SMA_DOCTEST_STATE"
__sma_save() {
  for __sma_v in $(compgen -v); do
    case "$__sma_base" in *" $__sma_v "*) ;; *) declare -p "$__sma_v" ;; esac
  done > "$SMA_DOCTEST_STATE"
}
trap __sma_save EXIT
"""


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    heading: str
    code: str
    step: int | None  # None: skipped
    reason: str = ""


def shell_blocks(text: str) -> list[Block]:
    """The ```sh and ```bash blocks of a Markdown text with their markers; a missing or
    malformed marker is a ValueError naming the block's line."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading, marker, i = "", None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        found = MARKER.fullmatch(line.strip())
        if found:
            marker = (found.group(1), i + 1)
        fence = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence:
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip() == "```"), None)
            if end is None:
                raise ValueError(f"README line {i + 1}: the block never ends")
            if fence.group(2) in ("sh", "bash"):
                indent = len(fence.group(1))
                code = "\n".join(x[indent:] for x in lines[i + 1:end]) + "\n"
                blocks.append(_marked(marker, i + 1, heading, code))
            marker, i = None, end + 1
            continue
        if line.strip() and not found:
            marker = None  # a marker is for the block right after it
        i += 1
    return blocks


def _marked(marker: tuple[str, int] | None, line: int, heading: str, code: str) -> Block:
    if marker is None:
        raise ValueError(f"README line {line} ({heading}): a shell block without "
                         "`<!-- doctest: run N -->` or `<!-- doctest: skip: REASON -->` "
                         "on the line before it")
    words = marker[0]
    run = re.fullmatch(r"run\s+(\d+)", words)
    if run:
        return Block(line, heading, code, int(run.group(1)))
    skip = re.fullmatch(r"skip:\s*(\S.*)", words)
    if skip:
        return Block(line, heading, code, None, skip.group(1))
    raise ValueError(f"README line {marker[1]}: {words!r} is not `run N` or `skip: REASON`")


def walkthrough(blocks: list[Block]) -> list[Block]:
    """The blocks to run, in the order they run."""
    return sorted((b for b in blocks if b.step is not None), key=lambda b: (b.step, b.line))


def test_every_shell_block_is_marked():
    blocks = shell_blocks(README.read_text())
    assert len(walkthrough(blocks)) >= 5
    for block in blocks:
        assert block.step is not None or block.reason


@pytest.mark.parametrize("text, error", [
    ("# T\n\n```sh\nls\n```\n", "line 3 (T): a shell block without"),
    ("<!-- doctest: run -->\n```bash\nls\n```\n", "'run' is not `run N`"),
    ("<!-- doctest: skip: -->\n```sh\nls\n```\n", "'skip:' is not"),
    ("<!-- doctest: run 1 -->\n\nSome text.\n```sh\nls\n```\n", "line 4"),
    ("<!-- doctest: run 1 -->\n```sh\nls\n", "line 2: the block never ends"),
])
def test_a_badly_marked_block_is_refused(text, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        shell_blocks(text)


def test_markers_and_order():
    text = ("## A\n<!-- doctest: run 2 -->\n```sh\necho a\n```\n"
            "```python\nprint(1)\n```\n"
            "## B\n<!-- doctest: skip: needs docker -->\n```bash\ndocker ps\n```\n"
            "- item\n\n  <!-- doctest: run 1 -->\n  ```sh\n  echo c\n  ```\n")
    blocks = shell_blocks(text)
    assert [(b.heading, b.step, b.reason, b.code) for b in blocks] == [
        ("A", 2, "", "echo a\n"), ("B", None, "needs docker", "docker ps\n"),
        ("B", 1, "", "echo c\n")]
    assert [b.code for b in walkthrough(blocks)] == ["echo c\n", "echo a\n"]


@pytest.fixture
def sma_up(tmp_path):
    up = Up(tmp_path / "data", extra=["--workers", "1"])
    try:
        token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
        up.wait_for("Press Ctrl-C")
        yield up, token
    finally:
        up.kill()


def test_readme_examples_run_as_written(sma_up, tmp_path):
    for tool in ("curl", "jq", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"the README's examples use {tool}, which is not installed here")
    up, token = sma_up
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               SMA_DOCTEST_STATE=str(tmp_path / "state.sh"))
    address = f"127.0.0.1:{up.port}"
    printed = {}
    for block in walkthrough(shell_blocks(README.read_text())):
        script = PRELUDE + "set -x\n" + block.code.replace("127.0.0.1:8080", address)
        try:
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script],
                                  cwd=work, env=env, input=token + "\n", text=True,
                                  capture_output=True, timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"README line {block.line} ({block.heading}): still running "
                                 f"after {BLOCK_TIMEOUT} s; output:\n{exc.stdout}\n{exc.stderr}") from None
        assert done.returncode == 0, (
            f"README line {block.line} ({block.heading}) exited {done.returncode}:\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
        printed[block.heading] = done.stdout

    # what the examples say they do, they did
    assert "hello world 2" in printed["A runbook, end to end, with curl"]
    assert '"JobIds"' in printed["Schedules, webhooks, child runbooks"]
    assert "hello world 2" in printed["The `sma` command"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    jobs = api.get(f"{up.url}/api/v1/jobs", params={"runbook": "cleanup"}).json()["items"]
    ran = [j for j in jobs if j["arguments"] == ["-s", "sub-1", "vm01"]]
    assert ran and ran[0]["status"] == "Completed", jobs
    assert api.get(f"{up.url}/api/v1/jobs/{ran[0]['id']}/output").text == "cleaning -s sub-1 vm01\n"
