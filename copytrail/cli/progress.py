"""A rich progress bar for ingest: files, MB, MB/s, items, errors, ETA. Written to stderr."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from copytrail.cli.render import err


class RichIngestProgress:
    def __init__(self, label: str) -> None:
        self.label = label
        self.items = 0
        self.errors = 0
        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[items]} items"),
            TextColumn("[red]{task.fields[errors]} unreadable"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self._task: TaskID | None = None

    def start(self, total_bytes: int, total_files: int) -> None:
        self._p.start()
        self._task = self._p.add_task(
            f"{self.label} ({total_files} files)", total=total_bytes, items=0, errors=0
        )

    def advance(self, nbytes: int, items: int, errors: int) -> None:
        self.items += items
        self.errors += errors
        if self._task is not None:
            self._p.update(self._task, advance=nbytes, items=self.items, errors=self.errors)

    def finish(self) -> None:
        self._p.stop()


class RichPhaseProgress:
    """One bar per phase (verify: events, blobs; guard index: reading texts, sorting), created
    when the phase starts. `in_bytes` shows sizes and MB/s instead of counts."""

    def __init__(self, verb: str = "checking", in_bytes: bool = False) -> None:
        amount = (
            [DownloadColumn(), TransferSpeedColumn()]
            if in_bytes
            else [TextColumn("{task.completed}/{task.total}")]
        )
        self.verb = verb
        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            *amount,
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichPhaseProgress:
        self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.stop()

    def __call__(self, phase: str, advance: int, total: int | None) -> None:
        if phase not in self._tasks:
            self._tasks[phase] = self._p.add_task(f"{self.verb} {phase}".strip(), total=total)
        elif total is not None:
            self._p.update(self._tasks[phase], total=total)
        self._p.update(self._tasks[phase], advance=advance)


class RichCountProgress:
    """A bar for work counted in items (texts fingerprinted), with rate and ETA."""

    def __init__(self, label: str) -> None:
        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("items"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
        )
        self.label = label
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        self._p.start()
        self._task = self._p.add_task(self.label, total=total)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._p.update(self._task, advance=n)

    def finish(self) -> None:
        self._p.stop()
