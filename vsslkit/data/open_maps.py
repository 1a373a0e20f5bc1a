"""The memory maps a frame store keeps open in one process: the most recently used, a bounded number.

Why bounded: CPython's `mmap` keeps a duplicate of the file's descriptor for as long as the mapping
lives, so a store that kept every video it ever read mapped would hold one descriptor per video. A
UCF101 epoch reads 13,320 videos, and the usual soft limit is 1,024 open files: the run would stop
with "Too many open files" part-way through its first epoch (in every DataLoader worker). Dropping the
least recently used mapping bounds the descriptors; reading that video again maps it again (one
`np.load(mmap_mode="r")`, a fraction of a millisecond; the store's validation is not repeated).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

DEFAULT_MAX_OPEN = 1024  # at most this many maps, and never more than a quarter of the descriptor limit


def default_capacity() -> int:
    """How many maps a process keeps: a quarter of its soft open-file limit, between 16 and 1,024
    (the rest is left to the loader, sockets, checkpoints and the user's own files)."""
    try:
        import resource
    except ImportError:  # not POSIX: no limit to read
        return 256
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_OPEN
    return max(16, min(DEFAULT_MAX_OPEN, soft // 4))


class OpenMaps:
    """A least-recently-used map from a video path (as given) to its open frames; at most `capacity`."""

    def __init__(self, capacity: int | None = None):
        self.capacity = default_capacity() if capacity is None else int(capacity)
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity}")
        self._items: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any:
        """The cached value (now the most recently used), or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        """Cache `value`; the least recently used entry goes (and its mapping closes) beyond capacity."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
