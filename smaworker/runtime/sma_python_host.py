"""Runs a Python runbook: as a script (`__main__`, with the start's positional arguments in
sys.argv, in order, then a `--name value` pair for each named parameter), or, for a script with
a `main` and no `if __name__ == "__main__":` block, as `main(**parameters)`; the worker's spec
says which (smacommon.scripts.python.calls_main).

Tracebacks name the runbook's frames `<runbook name>.py`, with their source lines, not the
sandbox's `runbook.py`.

Kept to built-in modules on the common path (marshal, not json; no runpy): every
millisecond here is paid by every job.

`--warm FD` (smaworker/warm.py): a host started before its job, already in the job's sandbox,
limits set and root dropped; it blocks on the pipe FD until the worker hands it a job (the
script, the spec and the job's own environment variables: its id, token, API address), then
runs it as a cold host would. It runs one job only: the worker starts a fresh one for the
next. A host left waiting IDLE_SECONDS (the worker is idle) imports sma's helpers and the
common standard modules meanwhile, so the job's imports cost nothing; under load it does
not, because every host costs each job its CPU (all of them: about 60 ms here, five times a
bare interpreter's start) and the next job would wait for it.
"""

import marshal
import os
import sys


def _set_limits() -> None:
    """The job's resource limits (SMA_RLIMITS, 'name=soft:hard', sizes in KiB), set before
    the runbook runs: a process that is not root can lower them, never raise them again."""
    spec = os.environ.get("SMA_RLIMITS")
    if not spec:
        return
    import resource

    try:
        for item in spec.split():
            name, _, values = item.partition("=")
            soft, hard = (int(v) for v in values.split(":"))
            if name in ("core", "data", "fsize"):
                soft, hard = soft * 1024, hard * 1024
            resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), (soft, hard))
    except (ValueError, OSError, AttributeError) as exc:
        sys.stderr.write(f"sma: could not set the job's limits ({spec}): {exc}\n")
        os._exit(125)


def _drop_root() -> None:
    """Become the job's user before anything else, when the worker asks (it runs this host
    as root inside the job's namespaces instead of exec'ing setpriv first)."""
    run_as = os.environ.pop("SMA_RUN_AS", None)
    if not run_as:
        return
    try:
        uid, gid = (int(part) for part in run_as.split(":"))
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        ok = os.getresuid() == (uid, uid, uid) and os.getresgid() == (gid, gid, gid)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"sma: could not run as the job user ({run_as}): {exc}\n")
        ok = False
    if not ok:
        os._exit(125)


class _Source:
    """The runbook's module loader as far as tracebacks ask: linecache finds the source of
    frames named `<runbook>.py` (no such file exists) through `__loader__.get_source`."""

    def __init__(self, source: bytes) -> None:
        self.source = source

    def get_source(self, name: str) -> str:
        return self.source.decode("utf-8", "replace")


# What a warm host left idle imports before its job arrives, most used first: sma's helpers
# and the standard modules runbooks use most (an import a runbook then makes costs a
# dictionary lookup). A job that arrives meanwhile is not kept waiting for the rest.
IDLE_SECONDS = 0.25
_WARM_MODULES = ("smarunbook", "json", "re", "datetime", "time", "pathlib", "subprocess",
                 "logging", "collections", "itertools", "functools", "typing", "traceback",
                 "random", "base64", "hashlib", "uuid", "shutil", "tempfile", "math", "io",
                 "string", "textwrap", "enum", "csv", "argparse", "decimal", "socket",
                 "dataclasses", "urllib.parse", "urllib.request")


def _cold() -> tuple[str, dict]:
    script, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path, "rb") as fh:
        spec = marshal.load(fh)
    sys.path[:0] = [os.path.dirname(script), os.path.dirname(os.path.abspath(__file__))]
    return script, spec


def _warm(fd: int) -> tuple[str, dict]:
    """Warm up, then wait for the job (see the module's docstring); its script and spec."""
    sys.path[:0] = [os.getcwd(), os.path.dirname(os.path.abspath(__file__))]
    import select

    # a process's first compile() costs about 1 ms (the parser sets itself up), every later
    # one microseconds: paid here, not by the job
    exec(compile(b"pass\n", "<warm>", "exec", dont_inherit=True), {})
    if not select.select([fd], [], [], IDLE_SECONDS)[0]:  # no job yet: the worker is idle
        import importlib

        for name in _WARM_MODULES:
            if select.select([fd], [], [], 0)[0]:  # the job is here
                break
            try:
                importlib.import_module(name)
            except ImportError:
                pass
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    if not chunks:  # the worker let it go unused (its shutdown, a job that needed cold)
        os._exit(0)
    spec = marshal.loads(b"".join(chunks))
    os.environ.update(spec["env"])
    _set_limits()  # the job's own, where they are lower than the worker's defaults
    return spec["script"], spec


def _run(script: str, spec: dict) -> int:
    parameters = spec["parameters"]
    with open(script, "rb") as fh:
        source = fh.read()
    shown = (os.environ.get("SMA_RUNBOOK_NAME") or "runbook") + ".py"
    code = compile(source, shown, "exec", dont_inherit=True)
    has_main = spec["has_main"]
    module = type(sys)("__sma_runbook__" if has_main else "__main__")
    module.__file__ = script
    module.__builtins__ = __builtins__
    module.__loader__ = _Source(source)
    if has_main:
        sys.argv = [script]
        sys.modules["__sma_runbook__"] = module
        exec(code, module.__dict__)
        main = module.main
        fn = getattr(main, "__code__", None)
        if fn is not None and not fn.co_flags & 0x08:  # no **kwargs: only what main takes
            # (a webhook's WEBHOOKDATA goes to a main that does not ask for it otherwise)
            names = fn.co_varnames[:fn.co_argcount + fn.co_kwonlyargcount]
            parameters = {k: v for k, v in parameters.items() if k in names}
        result = main(**parameters)
        if result is not None:
            import smarunbook

            smarunbook.output(result)
        return 0
    argv = [script, *spec.get("arguments", ())]
    for name, value in parameters.items():
        if not isinstance(value, str):
            import json

            value = json.dumps(value)
        argv += [f"--{name}", value]
    sys.argv = argv
    sys.modules["__main__"] = module
    exec(code, module.__dict__)
    return 0


def _report(exc: BaseException) -> None:
    """The traceback as Python prints it (chained exceptions and notes too), without this
    host's own frame, so the trace starts in the runbook."""
    import traceback

    report = traceback.TracebackException.from_exception(exc)
    report.stack = traceback.StackSummary.from_list(
        [f for f in report.stack if not f.filename.endswith("sma_python_host.py")])
    sys.stderr.write("".join(report.format()))


def _finish() -> None:
    """What the interpreter does after its script, before it exits (Py_FinalizeEx): wait
    for the runbook's threads that are not daemons, then run its atexit callbacks (each
    one's error is printed and the next runs). `os._exit` alone would cut both off: a
    thread's last lines, a log handler's flush would be lost."""
    threading = sys.modules.get("threading")  # not imported: no thread of its to wait for
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException as exc:  # noqa: BLE001 - as Python: said, and it goes on
            _report(exc)
    import atexit

    atexit._run_exitfuncs()


def run_and_exit(script: str, spec: dict) -> None:
    """Run the runbook, its traceback (if it raised) on stderr, then end the process as
    Python ends it (`_finish`), with its exit code."""
    try:
        code = _run(script, spec)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException as exc:  # the runbook raised: its traceback is the Error stream
        try:
            sys.stdout.flush()
        except Exception:
            pass
        _report(exc)
        code = 1
    try:
        _finish()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    _set_limits()
    _drop_root()
    run_and_exit(*(_warm(int(sys.argv[2])) if sys.argv[1] == "--warm" else _cold()))
