"""Where the chunks of a study run: serially in this process or on a Dask cluster."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mlob_pp.optional import require

__all__ = ["get_client", "execute"]


def get_client(scheduler: Any, n_workers: int | None, mcmc: bool):
    """Return (client, close, description) for `scheduler`: 'local', an address or a Client.

    With the MCMC arm, a local cluster gets one worker per two cores (each MCMC batch may use
    both); otherwise one single-threaded worker per core.
    """
    distributed = require("distributed", "dask", "run_study(scheduler=...)")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    if isinstance(scheduler, Client):
        return scheduler, lambda: None, f"dask client {scheduler.scheduler.address}"
    if scheduler == "local":
        cpus = os.cpu_count() or 1
        default = max(1, cpus // 2) if mcmc else cpus
        env = {} if mcmc else {"NUMBA_NUM_THREADS": "1"}
        cluster = LocalCluster(
            n_workers=n_workers or default,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env=env,
        )
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()

        return client, close, f"dask LocalCluster ({len(cluster.workers)} workers)"
    if isinstance(scheduler, str) and "://" in scheduler:
        client = Client(scheduler)
        return client, client.close, f"dask scheduler {scheduler}"
    raise ValueError(
        "`scheduler` must be None (serial), 'local', a scheduler address such as "
        f"'tcp://host:8786' or a distributed.Client; got {scheduler!r}"
    )


def execute(
    run_chunk: Callable[[Any], dict[str, Any]],
    todo: list[Any],
    finish: Callable[[dict[str, Any]], None],
    scheduler: Any,
    n_workers: int | None,
    mcmc: bool,
) -> str:
    """Run `run_chunk` on each task serially or on Dask; return a description of the scheduler.

    `finish` is called in this process with each chunk's result as soon as it is done.
    """
    if not todo:
        return "none (every chunk loaded from the checkpoint)"
    if scheduler is None:
        for task in todo:
            finish(run_chunk(task))
        return "serial"
    client, close, text = get_client(scheduler, n_workers, mcmc)
    try:
        from distributed import as_completed

        futures = client.map(run_chunk, todo, pure=False)
        for fut in as_completed(futures):
            res = fut.result()
            fut.release()
            finish(res)
    finally:
        close()
    return text
