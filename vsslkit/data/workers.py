"""Worker processes that never outlive the command that started them.

Every process pool of the kit (frame-store builds, `data synthetic`, `data check`) passes
`initializer=die_with_parent`, so a `kill -9` of the command also ends its workers instead of
leaving them to finish their queue and then idle forever.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time


def die_with_parent() -> None:
    """Pool-worker initializer: the worker gets SIGKILL when its parent dies (even by kill -9).

    Linux `prctl(PR_SET_PDEATHSIG)`; elsewhere a daemon thread that exits when the parent pid
    changes. Without it a killed command's workers finish their queue and then idle forever.
    """
    # the pid recorded when the parent started this worker: a parent killed while the worker was
    # still importing is then noticed too (getppid() would already name the new reaper)
    spawner = multiprocessing.parent_process()
    parent = spawner.pid if spawner is not None and spawner.pid else os.getppid()
    if os.getppid() != parent:
        os._exit(1)
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # 1 = PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()
