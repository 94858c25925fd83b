"""What a terminal shows while hotfolder works: `process`' live bar (files done of all, the current file,
files per second, time left) and `run`'s one-line status, each under the log lines (rich)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from hotfolder import logs
from hotfolder.settings.config import Config


def _rate(task: Task) -> float | None:
    """Files per second since the start: a burst of duplicates ending in 50 ms must not read 30 files/s
    (rich's own speed is over its last samples only)."""
    elapsed = task.elapsed
    return task.completed / elapsed if elapsed and task.completed else None


class _Rate(ProgressColumn):
    """Files per second."""

    def render(self, task: Task) -> Text:
        rate = _rate(task)
        return Text("" if rate is None else f"{rate:.2f} files/s", style="progress.data.speed")


class _Left(ProgressColumn):
    """Time left at the rate so far."""

    def render(self, task: Task) -> Text:
        rate = _rate(task)
        if rate is None or task.total is None:
            return Text("left -:--:--", style="progress.remaining")
        seconds = int((task.total - task.completed) / rate)
        return Text(
            f"left {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}", style="progress.remaining"
        )


class Bar:
    """`process`' bar: begin with the number of inputs, then how many ended and the current file."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("process", total=None, current="")

    def begin(self, total: int) -> None:
        """How many inputs there are."""
        self.progress.update(self.task, total=total)

    def update(self, done: int, current: str | None) -> None:
        """How many have ended, and the file a worker took last."""
        self.progress.update(self.task, completed=done, current=current or "")


@contextmanager
def _above_the_log(config: Config, live: Any) -> Iterator[None]:
    """Log lines go through rich while `live` is on screen (it prints them above itself)."""
    with live:
        logs.configure(fmt=config.log_format, level=config.log_level, stream=sys.stdout)  # rich's proxy now
        try:
            yield
        finally:
            logs.configure(fmt=config.log_format, level=config.log_level, stream=sys.__stdout__)


@contextmanager
def bar(config: Config) -> Iterator[Bar]:
    """A live bar on the terminal for the length of the block."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        _Left(),
        TextColumn("{task.fields[current]}"),
        console=Console(file=sys.stdout),
        redirect_stdout=True,
        redirect_stderr=True,
    )
    with _above_the_log(config, progress):
        yield Bar(progress)


class StatusLine:
    """`run`'s line under the log: set it with the daemon's `terminal_line`."""

    def __init__(self, live: Live) -> None:
        self.live = live

    def __call__(self, line: str) -> None:
        self.live.update(Text(line, style="bold"))


@contextmanager
def status_line(config: Config) -> Iterator[StatusLine]:
    """A one-line live status on the terminal for the length of the block."""
    live = Live(
        Text("starting"),
        console=Console(file=sys.stdout),
        refresh_per_second=4,
        transient=True,
        redirect_stdout=True,
        redirect_stderr=True,
    )
    with _above_the_log(config, live):
        yield StatusLine(live)
