"""WSGI entry point for gunicorn: `gunicorn smaweb.wsgi:app`."""

import gc

from smacommon.malloc import keep_freed_memory
from smaweb.app import create_app

# a large page's buffers reuse the last one's memory instead of faulting in fresh pages
keep_freed_memory()

app = create_app()
# The app's modules, schemas and OpenAPI document live as long as the process: move them out
# of the collector's generations, so a full collection (which a large page's thousands of
# dicts set off) walks what the request made, not ~10x as much (bench/history.py: a
# 10,000-record streams page p95 about 130 -> 30 ms).
gc.collect()
gc.freeze()
