"""Each instance's jobs have a folder of their own: two instances on one host never share one."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from smacommon.errors import ConfigurationError
from smaworker.jobsroot import jobs_root_for, prepare, remove_later, uid_locks_folder
from tests.conftest import wait_for
from tests.test_sandbox import needs_job_user


@pytest.fixture
def roots(tmp_path):
    """The jobs roots of two data folders, removed after the test (they live in /tmp)."""
    found = {name: jobs_root_for(tmp_path / name) for name in ("a", "b")}
    yield found
    for root in found.values():
        shutil.rmtree(root, ignore_errors=True)


def test_an_instance_keeps_its_jobs_root_and_two_instances_differ(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    root = jobs_root_for(tmp_path / "a")
    assert root.parent == Path(tempfile.gettempdir()) and root.name.startswith("sma-jobs-")
    assert jobs_root_for(tmp_path / "a") == root  # stable, start after start
    assert jobs_root_for(tmp_path / "link") == root  # the same folder, however it is named
    monkeypatch.chdir(tmp_path)
    assert jobs_root_for(Path("a")) == root
    assert jobs_root_for(tmp_path / "b") != root


def test_a_jobs_root_is_roots_and_closed_to_others(tmp_path):
    root = prepare(tmp_path / "jobs")
    assert oct(root.stat().st_mode & 0o777) == "0o711"
    assert oct((root / "run").stat().st_mode & 0o777) == "0o711"  # nobody may list it
    assert oct((root / "shared").stat().st_mode & 0o777) == "0o755"
    assert oct((root / "gone").stat().st_mode & 0o777) == "0o700"  # no job reaches it
    (root / "run").chmod(0o777)  # loosened by someone: tightened again at the next start
    prepare(root)
    assert oct((root / "run").stat().st_mode & 0o777) == "0o711"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_a_jobs_root_planted_by_another_user_or_as_a_link_is_refused(tmp_path):
    planted = tmp_path / "planted"
    planted.mkdir()
    os.chown(planted, 65534, 65534)
    with pytest.raises(ConfigurationError, match="must be a folder owned by root"):
        prepare(planted)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigurationError, match=r"link must be a folder owned by root .*"
                                                 r"remove it and start the worker again"):
        prepare(tmp_path / "link")


def test_uid_locks_are_the_hosts_whatever_the_instance(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = uid_locks_folder()
    assert folder == tmp_path / "sma-uids"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


def _output(api, job_id: str) -> list[str]:
    return api.get(f"/api/v1/jobs/{job_id}/output").get_data(as_text=True).split()


def _wait_output(api, job_id: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = _output(api, job_id)
        if lines:
            return lines
        time.sleep(0.1)
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()
    raise AssertionError(f"job {job_id} wrote nothing: {job}")


@needs_job_user
def test_two_instances_on_one_host_never_share_job_folders(api, processes, tmp_path, roots):
    """Two workers with their own data folders (two instances) put their jobs in their own
    roots: neither root holds the other's job, and a job of one cannot reach the other's."""
    group_a, group_b = f"inst-a-{os.getpid()}", f"inst-b-{os.getpid()}"
    processes.worker(group_a, concurrency=1, env={"SMA_DATA_DIR": str(tmp_path / "a")})
    processes.worker(group_b, concurrency=1, env={"SMA_DATA_DIR": str(tmp_path / "b")})
    waiting = api.create_runbook(content="import os, time\nprint(os.getcwd(), flush=True)\n"
                                         "time.sleep(120)\n")
    a = api.start(waiting["name"], worker_group=group_a)
    [folder_a] = _wait_output(api, a["id"])
    try:
        assert Path(folder_a).parent == roots["a"] / "run"
        assert Path(folder_a).is_dir()
        assert Path(folder_a).name not in os.listdir(roots["b"] / "run")
        looking = api.create_runbook(content=(
            "import os\n"
            "print(os.getcwd())\n"
            f"for path in ({folder_a!r}, {str(roots['a'] / 'run')!r}):\n"
            "    try:\n"
            "        os.listdir(path)\n"
            "        print('listed')\n"
            "    except OSError as exc:\n"
            "        print(type(exc).__name__)\n"))
        b = api.wait(api.start(looking["name"], worker_group=group_b)["id"])
        assert b["status"] == "Completed", b
        folder_b, *reached = _output(api, b["id"])
        assert Path(folder_b).parent == roots["b"] / "run"
        # in bubblewrap the other root is not in the job's own /tmp at all; without it,
        # the job may not enter it
        assert reached in (["FileNotFoundError"] * 2, ["PermissionError"] * 2)
        assert Path(folder_b).name not in os.listdir(roots["a"] / "run")
    finally:
        api.post(f"/api/v1/jobs/{a['id']}/stop")
    assert api.wait(a["id"])["status"] == "Stopped"


def test_a_job_folder_leaves_run_at_once_and_is_deleted_by_a_thread(tmp_path):
    """remove_later: the folder is out of run/ (and of every job's reach) when it returns;
    its files are deleted by a thread of the process; a folder already gone is no error."""
    root = prepare(tmp_path / "jobs")
    folder = root / "run" / f"{os.getpid()}-abcdef01-{os.urandom(16).hex()}"
    (folder / ".tmp" / "deep").mkdir(parents=True)
    for i in range(50):
        (folder / ".tmp" / "deep" / f"file{i}").write_text("left by the job")
    remove_later(root, folder)
    assert not folder.exists()
    wait_for(lambda: not any((root / "gone").iterdir()), timeout=10,
             what="the folder deleted from gone/")
    remove_later(root, folder)  # gone already: nothing to do, no error


@needs_job_user
def test_a_finished_jobs_folder_is_removed(api, worker, settings):
    """A job's folder, and what the job left in it and in its /tmp, is gone after the job
    (through gone/, where no job reaches)."""
    job = api.run("import os\nopen('left', 'w').write('x')\n"
                  "open('/tmp/left', 'w').write('x')\nprint(os.getcwd())\n")
    assert job["status"] == "Completed", job
    folder = Path(api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).strip())
    gone = jobs_root_for(settings.data_dir) / "gone" / folder.name
    wait_for(lambda: not folder.exists() and not gone.exists(), timeout=10,
             what="the job's folder removed")
