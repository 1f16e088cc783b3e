"""The line `sma job output` prints where an attempt (a run) of a job after the first begins,
as GET /jobs/{id}/output does: `--- Attempt 2 — resumed on worker w1 from the checkpoint of
12:03:07 UTC after its worker was lost ---`."""

from __future__ import annotations

from smacli.client import JobRecord, SmaClient


class AttemptMarkers:
    """Prints a marker before the first record of each attempt after the first."""

    def __init__(self, sma: SmaClient, job_id: str) -> None:
        self.sma = sma
        self.job_id = job_id
        self.shown = 1  # the attempt whose records are being printed
        self.texts: dict[int, str] = {}

    def before(self, record: JobRecord) -> None:
        """Print the markers due before `record` (none while its attempt goes on)."""
        attempt = record.attempt or 1
        if attempt <= self.shown:
            return
        if attempt not in self.texts:  # the job has run again since we asked
            job = self.sma.get_job(self.job_id)
            self.texts = {a.number: a.summary for a in job.attempts or [] if a.summary}
        for n in range(self.shown + 1, attempt + 1):
            print(f"--- {self.texts.get(n, f'Attempt {n}')} ---", flush=True)
        self.shown = attempt
