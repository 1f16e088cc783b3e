"""The audit of one job's stored records against what its runbook wrote.

The runbook (RUNBOOK below) writes, on each run (each attempt):

    begin c/N          Output, first; c is the step of the checkpoint it resumed from (1 at first)
    warning j/N        Warning record through smarunbook, then
    step j/N           Output line, then checkpoint({"next": j + 1}), then a short sleep,
                       for j = c .. N
    done N/N           Output, last

so each attempt's records, in the order written, are `expected(c, N)`.

At-least-once between checkpoints, precisely: a worker lost (killed, or its lease expired)
after step j's checkpoint was committed and before the next one was, takes with it what
the database did not commit; the next attempt begins at the checkpoint the database holds,
c', and runs steps c', c'+1, ... again. Those steps may appear twice (what the lost attempt
had stored of them, and the new attempt's): that is the allowance. A checkpoint once
committed never goes back, and every attempt began from a committed checkpoint, so attempt
k's allowance is steps >= max(c_1 .. c_k): a step below that run again, a record stored
twice within one attempt, two attempts whose records interleave — anything else is a
violation.

Counted per job:
- missing: a record skipped within an attempt (between its begin line and its last stored
  record; for the last attempt of a Completed job, up to done), a step no attempt stored,
  a gap in the job's seq numbers.
- out of order: a record that comes earlier in `expected` than one stored before it in the
  same attempt (a Warning stored after the line printed after it, say). The begin line of
  attempt k+1 stored after that attempt's first Warning is one such swap, and is undone
  before attempts are split at begin lines.
- duplicates beyond the allowance: as above, in records and in steps.
- reruns within the allowance, and `behind_stored_records`: reruns of a step j although
  the Warning of step j+1 (written after step j's checkpoint, on the same ordered record
  channel) had been stored — the checkpoint was not committed with what followed it (a
  checkpoint waits for the job's keys, asked of the web service, so it can lag the records
  during an outage). Allowed by the definition above; reported for the reader.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

RUNBOOK = '''\
import time

import smarunbook


def main(tag: str, steps: int = 5, pause: float = 0.2):
    first = smarunbook.last_checkpoint({"next": 1})["next"]
    print(f"chaos {tag} begin {first}/{steps}")
    for step in range(first, steps + 1):
        smarunbook.write_warning(f"chaos {tag} warning {step}/{steps}")
        print(f"chaos {tag} step {step}/{steps}")
        smarunbook.checkpoint({"next": step + 1})
        time.sleep(pause)
    print(f"chaos {tag} done {steps}/{steps}")
'''

_LINE = re.compile(r"^chaos (\S+) (begin|warning|step|done) (\d+)/(\d+)$")
_STREAM = {"begin": "Output", "warning": "Warning", "step": "Output", "done": "Output"}

Record = tuple[str, int]  # (kind, step): ("warning", 3)


def expected(begin: int, steps: int) -> list[Record]:
    """What an attempt that begins at step `begin` writes, in order."""
    return [("begin", begin), *[(k, j) for j in range(begin, steps + 1)
                                for k in ("warning", "step")], ("done", steps)]


@dataclass
class JobAudit:
    missing: int = 0
    out_of_order: int = 0
    duplicate_records_beyond: int = 0
    steps_rerun_beyond: int = 0
    steps_rerun_within: int = 0
    behind_stored_records: int = 0
    checkpoint_regressions: int = 0
    foreign: int = 0  # records of another job's tag, or in the wrong stream
    attempts_seen: int = 0
    other: Counter = field(default_factory=Counter)  # records not written by the runbook


def audit_records(tag: str, steps: int, records: list[tuple[int, str, str]],
                  completed: bool) -> JobAudit:
    """Audit one job's records: (seq, stream, text) in seq order."""
    a = JobAudit()
    seqs = [r[0] for r in records]
    a.missing += len(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
    ours: list[Record] = []
    for _seq, stream, text in records:
        m = _LINE.match(text)
        if not m:
            a.other[stream] += 1
        elif m.group(1) != tag or stream != _STREAM[m.group(2)] or int(m.group(4)) != steps:
            a.foreign += 1
        else:
            ours.append((m.group(2), int(m.group(3))))
    # undo the one swap that would split attempts wrongly: "warning c" of a new attempt
    # stored just before its "begin c" line (printed before it)
    for i in range(1, len(ours)):
        if ours[i][0] == "begin" and ours[i - 1] == ("warning", ours[i][1]) \
                and ours[i - 1] not in ours[i + 1:i + 3]:
            ours[i - 1], ours[i] = ours[i], ours[i - 1]
            a.out_of_order += 1
    attempts: list[list[Record]] = []
    for record in ours:
        if record[0] == "begin" or not attempts:
            attempts.append([])
        attempts[-1].append(record)
    a.attempts_seen = len(attempts)
    stored: set[Record] = set()  # stored by the attempts before this one
    floor = 1  # max(c_1 .. c_k): the checkpoint attempt k may not go below
    highest_warning = 0  # the highest step whose Warning an earlier attempt stored
    holes: set[Record] = set()
    for index, records_of in enumerate(attempts):
        begin = records_of[0][1] if records_of[0][0] == "begin" else 1
        if begin < floor or (index == 0 and begin != 1):
            a.checkpoint_regressions += 1
        floor = max(floor, begin)
        order = {r: i for i, r in enumerate(expected(begin, steps))}
        seen: set[Record] = set()
        top = -1
        for record in records_of:
            pos = order.get(record)
            if pos is None:  # a step before its own begin line: out of place
                a.out_of_order += 1
                continue
            if record in seen:
                a.duplicate_records_beyond += 1
                continue
            if pos < top:
                a.out_of_order += 1
            seen.add(record)
            top = max(top, pos)
        last = index == len(attempts) - 1
        end = len(order) - 1 if (last and completed) else top
        gap = {r for r, i in order.items() if i <= end} - seen
        holes |= gap
        a.missing += len(gap)
        for step in sorted({s for k, s in seen & stored if k in ("warning", "step")}):
            if step < floor:
                a.steps_rerun_beyond += 1
                a.duplicate_records_beyond += len({("warning", step), ("step", step)}
                                                  & seen & stored)
            else:
                a.steps_rerun_within += 1
                if step < highest_warning:
                    a.behind_stored_records += 1
        stored |= seen
        highest_warning = max([highest_warning] + [s for k, s in seen if k == "warning"])
    wanted = {(k, j) for j in range(1, steps + 1) for k in ("warning", "step")}
    if completed:
        wanted.add(("done", steps))
    else:  # a job that did not complete: only the steps it got to are expected
        reached = max([s for k, s in stored if k in ("warning", "step")], default=0)
        wanted = {(k, j) for k, j in wanted if j <= reached}
    a.missing += len(wanted - stored - holes)
    return a
