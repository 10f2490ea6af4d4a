"""`sciml.distributed`: run one program as several processes (hosts, GPUs) on JAX's own distributed runtime.

Call :func:`initialize` first, before anything else touches JAX. Every process then runs the same
code: `sciml.solve_ensemble` splits its trajectories over the devices of every process, and a loss over
a batch made with :func:`global_batch` trains data-parallel under `sciml.fit` (parameters replicated,
checkpoints written by process 0). The guide is the "Scale" page of the docs.

Where the settings come from (an argument given to :func:`initialize` always wins):

| setting | environment | under SLURM (``srun``) |
| --- | --- | --- |
| coordinator ``host:port`` | ``JAX_COORDINATOR_ADDRESS`` | the step's first host; port ``JAX_COORDINATOR_PORT`` or one derived from ``SLURM_JOB_ID`` |
| number of processes | ``JAX_NUM_PROCESSES`` | ``SLURM_NTASKS`` |
| this process's id | ``JAX_PROCESS_ID`` | ``SLURM_PROCID`` |
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Mapping, Sequence

import jax
import numpy as np

__all__ = ["initialize", "is_initialized", "global_mesh", "global_batch", "replicate", "to_host", "DistributedError"]

#: the one mesh axis of :func:`global_mesh`
AXIS = "batch"


class DistributedError(RuntimeError):
    """The processes of a distributed program disagree, or a distributed call came too early."""


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, local_device_ids: int | Sequence[int] | None = None,
               initialization_timeout: int = 300, heartbeat_timeout: int = 100,
               environ: Mapping[str, str] | None = None) -> None:
    """Join this process to a multi-process JAX program (``jax.distributed.initialize``).

    Reads the coordinator address, the number of processes and this process's id from the arguments,
    else from ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``, else from SLURM's
    variables (see the module docstring). On the CPU the processes talk through gloo collectives, so the
    same program runs as 2 processes on a laptop and as one process per GPU on a cluster.

    Args:
        coordinator_address: ``"host:port"`` of process 0 (which serves the coordinator there).
        num_processes: how many processes the program has (every process must say the same).
        process_id: this process's id, ``0 <= process_id < num_processes``.
        local_device_ids: the local accelerators this process uses (default: all it sees).
        initialization_timeout: seconds to wait for every process to join.
        heartbeat_timeout: seconds without a heartbeat after which a process counts as dead; the others
            then stop with an error instead of waiting for it forever.
        environ: where to read the settings (default ``os.environ``).

    Raises:
        DistributedError: JAX already started (a JAX array or computation before this call), or the
            processes disagree on the number of processes.
        ValueError: a setting is missing or out of range (the message names where it is read from).

    Example (each of two processes runs this, with its own ``JAX_PROCESS_ID``)::

        import sciml
        sciml.distributed.initialize()          # JAX_COORDINATOR_ADDRESS=127.0.0.1:1234 JAX_NUM_PROCESSES=2
        ens = sciml.solve_ensemble(f, y0s, (0.0, 1.0), args=params)   # split over both processes
    """
    from jax._src import distributed as jax_distributed, xla_bridge

    env = os.environ if environ is None else environ
    if jax_distributed.global_state.client is not None:
        raise DistributedError("`sciml.distributed.initialize()` was already called in this process; call it once, "
                               "at the start of the program.")
    if xla_bridge.backends_are_initialized():
        raise DistributedError("JAX has already started in this process (something created a JAX array or ran a "
                               "computation), and a multi-process program must join the others first. Call "
                               "`sciml.distributed.initialize()` right after the imports, before any JAX work.")
    address, count, pid = settings(coordinator_address, num_processes, process_id, env)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(address, count, pid, local_device_ids=local_device_ids,
                               initialization_timeout=int(initialization_timeout),
                               heartbeat_timeout_seconds=int(heartbeat_timeout))
    _check_agreement(count, pid, initialization_timeout)


def settings(coordinator_address, num_processes, process_id, env: Mapping[str, str]) -> tuple[str, int, int]:
    """``(coordinator address, number of processes, process id)`` from the arguments, else the environment."""
    slurm = "SLURM_PROCID" in env and "SLURM_NTASKS" in env
    if coordinator_address is None:
        coordinator_address = env.get("JAX_COORDINATOR_ADDRESS") or (_slurm_coordinator(env) if slurm else None)
    if num_processes is None:
        num_processes = _int_env(env, "JAX_NUM_PROCESSES") or (_int_env(env, "SLURM_NTASKS") if slurm else None)
    if process_id is None:
        process_id = _int_env(env, "JAX_PROCESS_ID")
        if process_id is None and slurm:
            process_id = _int_env(env, "SLURM_PROCID")
    missing = [name for name, value in (("coordinator_address", coordinator_address),
                                        ("num_processes", num_processes), ("process_id", process_id))
               if value is None]
    if missing:
        raise ValueError(f"`sciml.distributed.initialize()` needs {', '.join(f'`{m}`' for m in missing)}: pass "
                         f"them, or set JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID in "
                         f"each process's environment (under SLURM's `srun` they are read from SLURM_*).")
    if isinstance(num_processes, bool) or not isinstance(num_processes, (int, np.integer)) or num_processes < 1:
        raise ValueError(f"`num_processes` must be a positive int; got {num_processes!r}.")
    if (isinstance(process_id, bool) or not isinstance(process_id, (int, np.integer))
            or not 0 <= process_id < num_processes):
        raise ValueError(f"`process_id` must be an int in [0, {num_processes}) (`num_processes={num_processes}`); "
                         f"got {process_id!r}.")
    if not re.fullmatch(r"\[?[\w.:-]+\]?:\d+", str(coordinator_address)):
        raise ValueError(f"`coordinator_address` must be 'host:port' (process 0's host); got {coordinator_address!r}.")
    return str(coordinator_address), int(num_processes), int(process_id)


def _int_env(env, name) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the environment variable {name}={value!r} must be an integer.") from None


def _slurm_coordinator(env) -> str:
    """Process 0's host (the first of the step's node list) and a port shared by the job's processes."""
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "localhost"
    first = re.match(r"([^,\[]+)(?:\[([^,\-\]]+))?", nodes)
    host = first.group(1) + (first.group(2) or "")
    port = _int_env(env, "JAX_COORDINATOR_PORT") or 61440 + (_int_env(env, "SLURM_JOB_ID") or 0) % 4096
    return f"{host}:{port}"


def _check_agreement(count: int, pid: int, timeout: int) -> None:
    """Every process must have been started with the same process count; the coordinator's is the truth."""
    from jax._src import distributed as jax_distributed

    client = jax_distributed.global_state.client
    client.key_value_set(f"sciml/num_processes/{pid}", str(count))
    theirs = int(client.blocking_key_value_get("sciml/num_processes/0", int(timeout) * 1000))
    if theirs != count:
        raise DistributedError(f"this process (id {pid}) was started with `num_processes={count}` but the "
                               f"coordinator (process 0) with {theirs}; start every process with the same count.")


def is_initialized() -> bool:
    """True once :func:`initialize` (or ``jax.distributed.initialize``) has joined this process to others."""
    from jax._src import distributed as jax_distributed

    return jax_distributed.global_state.client is not None


def require_initialized(what: str) -> None:
    """Raise if this process was started as one of several (``JAX_NUM_PROCESSES`` > 1) but has not
    joined the others: ``what`` would otherwise quietly run the whole job alone, once per process."""
    expected = os.environ.get("JAX_NUM_PROCESSES", "")
    if expected.isdigit() and int(expected) > 1 and jax.process_count() == 1:
        raise DistributedError(f"{what} runs in a process started as one of JAX_NUM_PROCESSES={expected}, but "
                               f"this process has not joined the others: call `sciml.distributed.initialize()` "
                               f"at the start of the program (or unset JAX_NUM_PROCESSES to run alone).")


def global_mesh() -> jax.sharding.Mesh:
    """A one-axis mesh (axis ``"batch"``) of every device of every process, in process order."""
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return jax.sharding.Mesh(np.array(devices), (AXIS,))


def global_batch(local: Any, mesh: jax.sharding.Mesh | None = None) -> Any:
    """A global array (pytree) whose leading axis is every process's ``local`` part, in process order.

    Each process passes its own share (the same shape on every process, leading axis divisible by its
    number of devices); the result is split over the mesh's first axis (default :func:`global_mesh`).
    A jitted loss over it (and so `sciml.fit`) computes on the whole batch, data-parallel.

    Raises:
        DistributedError: with more than one process but before :func:`initialize`.
    """
    require_initialized("`sciml.distributed.global_batch`")
    mesh = global_mesh() if mesh is None else mesh
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names[0]))

    def place(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, (x.shape[0] * jax.process_count(),) + x.shape[1:])

    return jax.tree_util.tree_map(place, local)


def replicate(tree: Any, mesh: jax.sharding.Mesh | None = None) -> Any:
    """``tree``'s arrays as global arrays holding the same value on every device of every process.

    Every process must pass the same values (parameters, optimizer state). Arrays already laid out so
    are returned as they are.
    """
    mesh = global_mesh() if mesh is None else mesh
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def place(x):
        if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim):
            return x
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(place, tree)


def to_host(x) -> np.ndarray:
    """A NumPy copy of the whole of ``x``, also of a global array split over processes (every process
    must call it: it is a collective)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def on_every_process(run):
    """`sciml.fit`'s training state (a ``sciml._checkpoint.Run``) with its arrays replicated over every
    device of every process, so that a step over a `global_batch` is data-parallel; unchanged in a
    single process."""
    require_initialized("`sciml.fit`")
    if jax.process_count() == 1:
        return run
    best = None if run.best_params is None else replicate(run.best_params)
    return dataclasses.replace(run, params=replicate(run.params), state=replicate(run.state), best_params=best)


def write_on_process_0(write, *args) -> None:
    """``write(*args)`` on process 0 only (every process holds the same state; one file, one writer), then
    a barrier, so that no process goes on (or returns from `sciml.fit`) before the file is written."""
    if jax.process_index() == 0:
        write(*args)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("sciml: checkpoint written")
