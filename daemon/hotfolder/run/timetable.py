"""What waits for a time: a file offered again later, an interrupted commit finished later."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hotfolder.decide.job import Job
from hotfolder.settings.watches import Watch


@dataclass(order=True)
class Due:
    """Something to do at a time: offer a file again, or finish an interrupted commit."""

    at: float
    tie: int
    watch: Watch | None = field(compare=False, default=None)
    path: Path | None = field(compare=False, default=None)
    root: Path | None = field(compare=False, default=None)
    intent: int | None = field(compare=False, default=None)


class Timetable:
    """A heap of Due items on the engine's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._heap: list[Due] = []
        self._tie = 0

    def __len__(self) -> int:
        return len(self._heap)

    def later(
        self,
        delay: float,
        *,
        watch: Watch | None = None,
        path: Path | None = None,
        root: Path | None = None,
        intent: int | None = None,
    ) -> None:
        """In `delay` seconds: offer path (of watch, below root) again, or finish an intent."""
        self._tie += 1
        heapq.heappush(self._heap, Due(self.clock() + delay, self._tie, watch, path, root, intent))

    def again(self, job: Job, delay: float) -> None:
        """Offer this job's file again in `delay` seconds, as its watch would."""
        root = job.root
        self.later(delay, watch=job.watch or Watch(path=root, name=root.name), path=job.src, root=root)

    def next_at(self) -> float | None:
        """When the first item is due, or None."""
        return self._heap[0].at if self._heap else None

    def due(self) -> Iterator[Due]:
        """Pop every item whose time has come, earliest first."""
        now = self.clock()
        while self._heap and self._heap[0].at <= now:
            yield heapq.heappop(self._heap)
