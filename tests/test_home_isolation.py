"""The suite keeps out of the user's home: a `sma login` of theirs never reaches a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from smacommon.embedded_redis import free_port
from tests.conftest import ROOT

XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


def test_home_and_the_xdg_folders_are_a_temporary_folder_of_the_run():
    home = Path(os.environ["HOME"])
    assert home == Path(os.environ["SMA_TEST_HOME"]) and home.is_dir()
    assert home.name.startswith("sma-test-home-")
    assert Path.home() == home and Path("~").expanduser() == home
    for name in XDG:
        assert Path(os.environ[name]).is_relative_to(home), name
    from smacli.cli.common import config_path

    assert config_path() == home / ".config" / "sma" / "config.json"


def test_a_login_in_the_users_home_never_reaches_the_suite(tmp_path):
    """The README's `sma login` saves the user's login in ~/.config/sma/config.json; a test
    that runs `sma token create` without a login of its own still passes under that home,
    which keeps what it held and gains nothing."""
    user_home = tmp_path / "home"
    config = user_home / ".config" / "sma" / "config.json"
    config.parent.mkdir(parents=True)
    saved = {"url": f"http://127.0.0.1:{free_port()}", "token": "sma_the_users_own"}
    config.write_text(json.dumps(saved))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMA_", "PYTEST_", "XDG_")) or k.startswith("SMA_TEST_")}
    env.pop("SMA_TEST_HOME", None)
    env["HOME"] = str(user_home)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         "--basetemp", str(tmp_path / "run"),
         "tests/test_security.py::test_sma_token_create_on_a_new_install"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
    assert json.loads(config.read_text()) == saved
    assert sorted(str(p.relative_to(user_home)) for p in user_home.rglob("*")) == [
        ".config", ".config/sma", ".config/sma/config.json"]
