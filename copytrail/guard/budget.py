"""What one verbatim check may cost. A text of repeated common words with a tiny threshold can
otherwise follow billions of occurrences; the budget turns that into a clear error within a
bounded time and memory, and lets a server stop a check whose client went away."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from copytrail.errors import Cancelled, LimitExceeded

# Occurrences followed word by word in one check (each kept one costs 8 bytes until the answer).
MAX_EXAMINED = 10_000_000
MAX_RUNS = 100_000  # distinct (stretch, alignment) runs kept in one check


@dataclass
class Budget:
    seconds: float | None = None  # wall-clock limit from the first spend; None: no limit
    max_examined: int = MAX_EXAMINED
    max_runs: int = MAX_RUNS
    cancel: threading.Event | None = None  # set by another thread to stop the check
    examined: int = 0
    runs: int = 0
    _deadline: float | None = field(default=None, repr=False)

    def restart_clock(self) -> None:
        """A new time budget (each message of a streamed check gets its own)."""
        self._deadline = None

    def spend(self, examined: int = 0, runs: int = 0) -> None:
        """Account for work about to be done; raise when a limit would be passed."""
        if self._deadline is None and self.seconds is not None:
            self._deadline = time.monotonic() + self.seconds
        self.examined += examined
        self.runs += runs
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the check was stopped: its caller went away")
        if self.examined > self.max_examined or self.runs > self.max_runs:
            raise LimitExceeded(
                "this check would follow more occurrences than one check may "
                f"({self.max_examined:,} places, {self.max_runs:,} runs): the text repeats very "
                "common words; raise min_words or send a shorter text"
            )
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise LimitExceeded(
                f"this check took longer than its {self.seconds:g} s budget; raise min_words "
                "or send a shorter text"
            )
