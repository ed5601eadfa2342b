"""Timers that each live in a process of their own, as a real training run does.

A benchmark that builds every implementation in one process times each beside the others'
models, buffers and envs: with eleven HalfCheetah models resident, ours-privileged measured
0.57x PPO-MLP, with five 0.61x, and two in benchmarks/time_split.py 0.62x. The larger working
set pays the more for its neighbours, and no user trains eleven models in one process. An
``Isolated`` timer builds its model in a spawned worker and times it there on request, so
repetitions can still be interleaved across implementations while each runs alone in its heap.

    timer = Isolated(make_timer, "ppo-mlp", config)  # make_timer(...) runs in the worker
    timer.measure(threads=1)  # what the worker's timer.measure() returns
    timer.close()
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

# spawn, not fork: a forked child of a process that already ran torch's thread pool can hang.
_CONTEXT = multiprocessing.get_context("spawn")


def _serve(connection: Connection, factory: Callable[..., Any], args: tuple[Any, ...]) -> None:
    import torch as th

    th.set_num_threads(1)
    try:
        timer = factory(*args)
        connection.send(("ready", None))
        while (threads := connection.recv()) is not None:
            th.set_num_threads(threads)
            connection.send(("result", timer.measure()))
    except EOFError:  # the parent is gone: nothing left to time for
        pass
    except Exception:  # reported to the parent, which raises it there (if it still listens)
        with contextlib.suppress(OSError):
            connection.send(("error", traceback.format_exc()))
    finally:
        connection.close()


class Isolated:
    """``factory(*args)`` built in a worker process; ``measure()`` runs its ``measure()`` there.

    ``factory`` must be importable (a module-level function), as must its arguments: the worker
    is spawned. Workers start building (warm-up included) as soon as they are created, side by
    side; the first ``measure()`` waits for its worker to be ready.
    """

    def __init__(self, factory: Callable[..., Any], *args: Any) -> None:
        self._connection, child = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(target=_serve, args=(child, factory, args), daemon=True)
        self._process.start()
        child.close()
        self._ready = False

    def __enter__(self) -> Isolated:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self) -> Any:
        try:
            kind, payload = self._connection.recv()
        except EOFError:
            raise RuntimeError(
                f"benchmark worker died (exit code {self._process.exitcode})"
            ) from None
        if kind == "error":
            self.close()
            raise RuntimeError(f"benchmark worker failed:\n{payload}")
        return payload

    def measure(self, threads: int = 1) -> Any:
        if not self._ready:
            self._receive()
            self._ready = True
        self._connection.send(threads)
        return self._receive()

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        if self._process.is_alive():
            try:
                self._connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._connection.close()
