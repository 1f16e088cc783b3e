"""Records and lines are stored in the order the runbook wrote them: the record channel is
a second descriptor of the stdout pipe (smaworker.channel), so one pipe keeps the order.

Promised: a runbook's stdout lines and its records (Warning, Verbose, typed output,
checkpoints, masks...) keep exactly their written order, whichever helper wrote them
(smarunbook, sma.sh, SmaRunbook.psm1, a process the runbook started). Stderr is a pipe of
its own: its lines keep their order among themselves; between a stderr line and a stdout
line written at nearly the same moment, the order is the order they were read in.
"""

from __future__ import annotations

import pytest

from smaworker.channel import RECORD, TEXT, TOO_LONG, Demux, new_tag

TAG = new_tag()
MARK = b"\x1e" + TAG.encode()


def _pieces(chunks: list[bytes], max_record: int = 1000) -> list[tuple[str, bytes]]:
    """What a Demux makes of `chunks`, with neighbouring text pieces joined."""
    demux = Demux(TAG, max_record)
    out: list[tuple[str, bytes]] = []
    for chunk in [*chunks, b""]:
        for kind, piece in demux.feed(chunk):
            if kind == TEXT and out and out[-1][0] == TEXT:
                out[-1] = (TEXT, out[-1][1] + piece)
            else:
                out.append((kind, piece))
    return out


STREAM = (b"one\n" + MARK + b'{"stream":"Warning","text":"w"}\n' + b"two\nthree, no newline"
          + MARK + b'{"type":"checkpoint","data":1}\n' + b"bell \x1e and a fake "
          + b"\x1e" + b"0" * 32 + b'{"stream":"Warning"}\n' + b"tail")
WANT = [(TEXT, b"one\n"), (RECORD, b'{"stream":"Warning","text":"w"}'),
        (TEXT, b"two\nthree, no newline"), (RECORD, b'{"type":"checkpoint","data":1}'),
        (TEXT, b"bell \x1e and a fake \x1e" + b"0" * 32 + b'{"stream":"Warning"}\ntail')]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 33, 34, 35, 64, len(STREAM)])
def test_lines_and_records_come_apart_in_order_however_the_reads_cut_them(size):
    chunks = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert _pieces(chunks) == WANT


def test_a_record_too_long_is_left_out_and_what_follows_is_kept():
    data = b"a\n" + MARK + b"x" * 5000 + b"\nb\n" + MARK + b'{"text":"ok"}\n'
    chunks = [data[i:i + 100] for i in range(0, len(data), 100)]
    assert _pieces(chunks, max_record=1000) == [
        (TEXT, b"a\n"), (TOO_LONG, b""), (TEXT, b"b\n"), (RECORD, b'{"text":"ok"}')]


def test_the_end_of_the_pipe_gives_back_what_was_held():
    assert _pieces([b"x" + MARK[:5]]) == [(TEXT, b"x" + MARK[:5])]
    assert _pieces([MARK + b'{"text":"no newline"}']) == [(RECORD, b'{"text":"no newline"}')]


# --- end to end, through a real worker --------------------------------------------------

N = 2000

PYTHON_INTERLEAVED = f"""
import sys
import smarunbook

def main():
    for i in range({N}):
        smarunbook.write_warning(f"w{{i}}")
        print(f"o{{i}}")
        smarunbook.output({{"i": i}})
        print(f"p{{i}}", end="")
        smarunbook.write_verbose(f"v{{i}}")
        print(f"q{{i}}")
        print(f"e{{i}}", file=sys.stderr)
        if i % 500 == 0:
            smarunbook.checkpoint(i)
"""


def _expected_python() -> list[tuple[str, str]]:
    out = []
    for i in range(N):
        out += [("Warning", f"w{i}"), ("Output", f"o{i}"), ("Output", f'{{"i": {i}}}'),
                ("Output", f"p{i}"), ("Verbose", f"v{i}"), ("Output", f"q{i}")]
    return out


def _split(records):
    """(stdout lines and records in stored order, stderr lines in stored order)"""
    main = [(r["stream"], r["text"]) for r in records if r["stream"] != "Error"]
    errors = [r["text"] for r in records if r["stream"] == "Error"]
    return main, errors


def test_python_records_and_lines_are_stored_in_the_order_written(api, worker):
    job = api.run(PYTHON_INTERLEAVED, log_verbose=True, timeout=180)
    assert job["status"] == "Completed", job
    records = api.records(job["id"])
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    main, errors = _split(records)
    assert main == _expected_python()
    assert errors == [f"e{i}" for i in range(N)]  # stderr: in order within itself


BASH_INTERLEAVED = f"""
for ((i = 0; i < {N}; i++)); do
  write_warning "w$i"
  echo "o$i"
  write_output_json "{{\\"i\\": $i}}"
  printf 'p%s' "$i"
  write_verbose "v$i"
  echo "q$i"
  echo "e$i" >&2
  if (( i % 200 == 0 )); then
    /bin/echo "x$i"   # a process of the runbook's, writing to the same stdout
    checkpoint "$i"
  fi
done
"""


def test_bash_records_and_lines_are_stored_in_the_order_written(api, worker):
    job = api.run(BASH_INTERLEAVED, runbook_type="bash", log_verbose=True, timeout=180)
    assert job["status"] == "Completed", job
    main, errors = _split(api.records(job["id"]))
    want = []
    for i in range(N):
        want += [("Warning", f"w{i}"), ("Output", f"o{i}"), ("Output", f'{{"i": {i}}}'),
                 ("Output", f"p{i}"), ("Verbose", f"v{i}"), ("Output", f"q{i}")]
        if i % 200 == 0:
            want.append(("Output", f"x{i}"))
    assert main == want
    assert errors == [f"e{i}" for i in range(N)]
