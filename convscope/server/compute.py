"""The explorer's own worker threads: two that run models for requests, two that decode uploads.

Model threads: their queue is first in, first out, so under load requests are answered in the
order they came (the wide default thread pool let some wait seconds while later ones went
first). Each runs torch with ONE intra-op thread: one input through a small network is far too
little work to split, and on a busy machine splitting it made every layer wait for a second
thread to be scheduled (10x slower). Torch's default for other threads (live training) stays.

Decode threads: as many as uploads may be decoded at once (``inputs.MAX_CONCURRENT_DECODES``).
The C allocator keeps freed memory per thread (arena); decoding on 40 pool threads kept 40
threads' worth of big-picture memory (700 MB after 40 uploads of a 58 KB PNG), two keep two.
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

from .inputs import MAX_CONCURRENT_DECODES

MODEL_THREADS = 2
T = TypeVar("T")
_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


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


def _pool(name: str) -> ThreadPoolExecutor:
    """The "model" or "decode" threads (started on first use)."""
    with _pools_lock:
        if name not in _pools:
            if name == "model":
                _freeze_long_lived()
                _pools[name] = ThreadPoolExecutor(MODEL_THREADS, "convscope-model",
                                                  initializer=_one_torch_thread)
            else:
                _pools[name] = ThreadPoolExecutor(MAX_CONCURRENT_DECODES, "convscope-decode")
        return _pools[name]


async def _run(pool: str, fn: Callable[..., T], *args) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(pool), functools.partial(fn, *args))


async def run_model(fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` on the model threads, awaited without blocking the event loop."""
    return await _run("model", fn, *args)


async def run_decode(fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` (decoding an upload) on the decode threads."""
    return await _run("decode", fn, *args)
