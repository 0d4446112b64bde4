"""Where the explorer runs its models for a request: a small pool of threads of its own.

Its queue is first in, first out, so under load requests are answered in the order they came
(the wide default thread pool let some wait seconds while later ones went first). Each of its
threads runs torch with ONE intra-op thread: one input through a small network is far too
little work to split, and on a busy machine splitting it made every layer wait for a second
thread to be scheduled (10x slower). Torch's default for other threads (live training) stays.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

WORKERS = 2
T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _one_torch_thread() -> None:
    """Give the calling thread one intra-op thread and leave torch's default as it was:
    ``set_num_threads`` sets both the calling thread's count and the default of threads that
    start later, so another short-lived thread sets the default back."""
    default = torch.get_num_threads()
    torch.set_num_threads(1)
    restore = threading.Thread(target=torch.set_num_threads, args=(default,))
    restore.start()
    restore.join()


def _freeze_long_lived() -> None:
    """Leave what the server holds by its first model request (imported modules, the app,
    models) out of the garbage collector's passes: under load a full pass over them paused
    every request for 100-300 ms every few seconds (p99 2.5x the median). Objects are still
    freed when no longer referenced; only cycles among these would stay."""
    gc.collect()
    gc.freeze()


def model_pool() -> ThreadPoolExecutor:
    """The explorer's model threads (started on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _freeze_long_lived()
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="convscope-model",
                                       initializer=_one_torch_thread)
        return _pool


async def run_model(fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` on the model threads, awaited without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(model_pool(), functools.partial(fn, *args))
