"""PEP 723 inline script metadata: what a Python runbook declares it needs."""

from __future__ import annotations

import pytest

from smacommon.errors import ScriptError
from smacommon.requirements import declared, environment_key

HEAD = ('# /// script\n'
        '# dependencies = ["cowsay==6.1", "httpx>=0.27"]\n'
        '# requires-python = ">=3.10"\n'
        '# ///\n')


def test_the_script_block_is_read():
    assert declared(HEAD + "import cowsay\n") == {
        "dependencies": ["cowsay==6.1", "httpx>=0.27"], "requires_python": ">=3.10"}


@pytest.mark.parametrize("content", [
    "print('no block')\n",
    "# /// script\n# requires-python = '>=3.10'\n# ///\n",
    "# /// script\n# dependencies = []\n# ///\n",
    "# /// pyproject\n# dependencies = ['x']\n# ///\n",  # another type: not ours
])
def test_no_dependencies_is_no_requirements(content):
    assert declared(content) is None


@pytest.mark.parametrize("content, message", [
    (HEAD + "import os\n" + HEAD, "more than one"),
    ("# /// script\n# dependencies = [\n# ///\n", "not valid TOML"),
    ("# /// script\n# dependencies = 'cowsay'\n# ///\n", "must be a list"),
    ("# /// script\n# dependencies = ['x']\n# requires-python = 3\n# ///\n", "must be a string"),
])
def test_a_bad_block_is_a_script_error(content, message):
    with pytest.raises(ScriptError, match=message):
        declared(content)


def test_the_environment_key_ignores_order_and_case_not_the_interpreter():
    assert environment_key(["B==1", "a==2"], "3.11") == environment_key(["a==2", "b==1"], "3.11")
    assert environment_key(["a==2"], "3.11") != environment_key(["a==2"], "3.12")
    assert environment_key(["a==2"], "3.11") != environment_key(["a==3"], "3.11")


def test_the_package_index_serves_built_wheels(package_index, tmp_path):
    import subprocess

    import uv

    package_index.add("sma-demo", "1.0")
    package_index.add("sma-demo", "2.0")
    package_index.add("sma-dep-user", "0.1", requires=["sma-demo<2"])
    (tmp_path / "req.in").write_text("sma-dep-user\n")
    done = subprocess.run([uv.find_uv_bin(), "pip", "compile", "--index-url",
                           package_index.simple, "--no-header", "--no-annotate",
                           "--cache-dir", str(tmp_path / "cache"), str(tmp_path / "req.in")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sma-demo==1.0", "sma-dep-user==0.1"]
