"""Runs a Python runbook: calls `main(**parameters)` when the script defines it, else runs the
script as `__main__` with Azure-style `--name value` arguments in sys.argv.

Kept to built-in modules on the common path (marshal, not json; no runpy): every
millisecond here is paid by every job.
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


def _run() -> int:
    script, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path, "rb") as fh:
        spec = marshal.load(fh)
    parameters = spec["parameters"]
    sys.path[:0] = [os.path.dirname(script), os.path.dirname(os.path.abspath(__file__))]
    with open(script, "rb") as fh:
        code = compile(fh.read(), script, "exec", dont_inherit=True)
    has_main = spec["has_main"]
    module = type(sys)("__sma_runbook__" if has_main else "__main__")
    module.__file__ = script
    module.__builtins__ = __builtins__
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
    argv = [script]
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
    import traceback

    tb = traceback.extract_tb(exc.__traceback__)
    # hide this host's own frame so the trace starts in the runbook
    frames = [f for f in tb if not f.filename.endswith("sma_python_host.py")]
    sys.stderr.write("Traceback (most recent call last):\n")
    sys.stderr.write("".join(traceback.format_list(frames)))
    sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))


if __name__ == "__main__":
    _set_limits()
    _drop_root()
    try:
        code = _run()
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
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
