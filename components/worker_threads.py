"""Work handed to a few threads, for C++ calls that let go of Python's lock (tfx-bsl's coders)."""
import collections
import concurrent.futures
import threading
from typing import Callable, Generic, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_in_order(pool: concurrent.futures.Executor, function: Callable[[Item], Result], items: Iterable[Item],
                 ahead: int) -> Iterator[Result]:
    """`function(item)` for each of `items`, computed on `pool` up to `ahead` items past the one the caller
    takes, yielded in the items' order. `items` is iterated on the caller's thread; an error raised by
    `function` is raised here, after the results before it."""
    pending = collections.deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class PerThread(Generic[Result]):
    """`make()` once per thread that asks: for objects that are not thread-safe."""

    def __init__(self, make: Callable[[], Result]):
        self._make = make
        self._local = threading.local()

    def get(self) -> Result:
        if not hasattr(self._local, "value"):
            self._local.value = self._make()
        return self._local.value
