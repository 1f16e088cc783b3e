"""Runs a Python runbook: calls `main(**parameters)` when the script defines it, else runs the
script as `__main__` with Azure-style `--name value` arguments in sys.argv."""

import json
import os
import runpy
import sys
import traceback


def _run() -> int:
    script, params_path = sys.argv[1], sys.argv[2]
    with open(params_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    parameters = spec["parameters"]
    sys.path[:0] = [os.path.dirname(script), os.path.dirname(os.path.abspath(__file__))]
    if spec.get("has_main"):
        sys.argv = [script]
        namespace = runpy.run_path(script, run_name="__sma_runbook__")
        result = namespace["main"](**parameters)
        if result is not None:
            import smarunbook

            smarunbook.output(result)
        return 0
    argv = [script]
    for name, value in parameters.items():
        argv += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    sys.argv = argv
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    try:
        code = _run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException as exc:  # the runbook raised: its traceback is the Error stream
        tb = traceback.extract_tb(exc.__traceback__)
        # hide this host's own frames so the trace starts in the runbook
        frames = [f for f in tb if not f.filename.endswith(("sma_python_host.py", "runpy.py",
                                                             "<frozen runpy>"))]
        sys.stdout.flush()
        sys.stderr.write("Traceback (most recent call last):\n")
        sys.stderr.write("".join(traceback.format_list(frames)))
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
