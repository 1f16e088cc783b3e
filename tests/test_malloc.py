"""smacommon.malloc: once tuned, a process's large short-lived buffers reuse freed memory
instead of faulting in fresh pages; an operator's own malloc tuning is left as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smacommon.malloc import operator_tuned

ROOT = Path(__file__).resolve().parent.parent
# what a page of 10,000 records makes: 1.4 MB bodies, built and dropped again and again
PROBE = r"""
import resource
from smacommon.malloc import keep_freed_memory

parts = [b"x" * 71_500 for _ in range(20)]

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        body = b"{" + b",".join(parts) + b"}"
        del body
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

untuned = faults()
tuned = keep_freed_memory()
faults()  # the first buffers of the tuned heap are new pages
print(untuned, tuned, faults())
"""


def _probe(**extra: str) -> tuple[int, bool, int]:
    env = {k: v for k, v in os.environ.items()
           if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    untuned, tuned, after = done.stdout.split()
    return int(untuned), tuned == "True", int(after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux")
def test_large_buffers_reuse_freed_memory_once_tuned():
    untuned, tuned, after = _probe()
    assert tuned
    # 20 bodies of 1.4 MB: about 7,000 page faults each time untuned on glibc 2.36
    assert after < 100, (untuned, after)


def test_an_operators_malloc_tuning_is_left_alone():
    _, tuned, _ = _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")
    assert not tuned
    _, tuned, _ = _probe(MALLOC_MMAP_THRESHOLD_="65536")
    assert not tuned
    # other settings are not these thresholds: tuned beside them
    assert not operator_tuned({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.pthread.rseq=0",
                               "MALLOC_ARENA_MAX": "2"})
    assert operator_tuned({"MALLOC_TRIM_THRESHOLD_": "65536"})
