"""A pool of model replicas on Ray: one actor per worker, batches handed out as workers free up, bounded retries.

The engine under `workbench.data.distributed`. Each worker is a Ray actor that holds one replica of the
driver's model: its weights go once through Ray's object store (so the replica is exactly the model in your
notebook), or, with ``RayEngine(model="facebook/musicgen-small")``, each worker loads them from its own disk.
The driver keeps a queue of batches and gives the next one to whichever worker is free; a worker that dies
(killed, out of memory, node lost) is replaced and its batch retried, a batch that raises is retried, both at
most `max_retries` times, after which `DistributedRunError` names the rows that failed. Every batch that
succeeds is handed to the caller's `on_result` on the driver as it arrives (collect commits it as one shard),
so whatever finished before a failure or a kill is kept.

Ray is imported only inside these functions: without it installed, `require_ray()` raises
`MissingExtraError` saying ``pip install -e ".[ray]"``.

A local cluster started here (`init_ray` without an address) ends with its driver: Ray ends most of its
processes when the driver dies, but not its agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``), so
`init_ray` starts a small watcher process that notes the driver's Ray processes every `REAPER_POLL_S` seconds
and, once the driver is gone (even killed with SIGKILL), ends those still running: SIGTERM, then SIGKILL
after `REAPER_GRACE_S`. Nothing of the cluster lingers more than about 10 s after its driver.

    >>> RayEngine(workers=2, max_retries=1).cpus_per_worker
    1.0
    >>> RayEngine(workers=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    workbench.errors.OutOfRangeError: RayEngine(workers=0): give a whole number >= 1, or None for one per GPU ...
"""
from __future__ import annotations

import collections
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable

from workbench.errors import BadInputError, WorkbenchError, WrongTypeError
from workbench.validation import finite_float, integer, positive_int

__all__ = ["RayEngine", "as_engine", "require_ray", "init_ray", "connect", "run_batches", "RunReport",
           "MissingExtraError", "DistributedRunError"]

INSTALL = 'pip install -e ".[ray]"'
REAPER_POLL_S = 2.0
REAPER_GRACE_S = 3.0
_reaper: subprocess.Popen | None = None

# The watcher (run as `python -c REAPER <driver pid> <poll s> <grace s>`, in a session of its own so that signals
# to the driver's process group spare it): a process is named by (pid, start time), so a recycled pid is never hit.
REAPER = r"""
import os, signal, sys, time
driver, poll_s, grace_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])

def table():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                out[int(name)] = (fields[0], int(fields[1]), int(fields[19]))  # state, parent, start time
            except (OSError, IndexError, ValueError):
                continue
    return out

def is_ray(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(bytes(1))
    except OSError:
        return False
    return args[0].startswith(b"ray::") or any(b"/ray/" in arg for arg in args[:3])

def alive(procs, now):
    return {p: t for p, t in procs.items() if p in now and now[p][2] == t and now[p][0] != b"Z"}

me, started = os.getpid(), time.monotonic()
driver_start = table().get(driver, (b"Z", 0, 0))[2]
known = {}
while True:
    now = table()
    if driver not in now or now[driver][0] == b"Z" or now[driver][2] != driver_start:
        break
    children = {}
    for pid, (_, parent, _) in now.items():
        children.setdefault(parent, []).append(pid)
    stack = list(children.get(driver, []))
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        if pid not in known and pid != me and is_ray(pid):
            known[pid] = now[pid][2]
    time.sleep(0.5 if time.monotonic() - started < 60 else poll_s)  # Ray starts its agents with the cluster
for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
    left = alive(known, table())
    for pid in left:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait_s
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = alive(known, table())
    if not left:
        break
"""


class MissingExtraError(WorkbenchError, ImportError):
    """An optional extra (here: Ray) is not installed."""


class DistributedRunError(WorkbenchError):
    """Batches that still failed after their retries; `failed_rows` lists their row ids, `report` the run."""

    def __init__(self, message: str, failed_rows: list, report=None):
        super().__init__(message)
        self.failed_rows, self.report = failed_rows, report


@dataclasses.dataclass(frozen=True)
class RayEngine:
    """Where and how wide a Ray run goes.

    workers: model replicas (None: one per GPU of the cluster, else one per `cpus_per_worker` CPUs).
    address: None starts a local Ray cluster in this process (or uses the one already started with
    ray.init); "auto" or "ray://head:10001" joins an existing cluster. gpus_per_worker: None gives each worker
    one GPU when the cluster has GPUs. model: a name or path each worker loads instead of receiving the
    driver's weights (big checkpoints on a cluster). num_cpus: CPUs of a local cluster started here.
    """

    workers: int | None = None
    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    max_retries: int = 2
    model: str | None = None
    num_cpus: int | None = None

    def __post_init__(self):
        if self.workers is not None:
            try:
                object.__setattr__(self, "workers", positive_int(self.workers, "RayEngine(workers)"))
            except BadInputError as error:
                raise type(error)(f"RayEngine(workers={self.workers!r}): give a whole number >= 1, or None for one "
                                  "per GPU (else per CPU)") from None
        object.__setattr__(self, "max_retries", integer(self.max_retries, "RayEngine(max_retries)", low=0))
        object.__setattr__(self, "cpus_per_worker", finite_float(
            self.cpus_per_worker, "RayEngine(cpus_per_worker)", low=0.0, low_inclusive=False))
        if self.gpus_per_worker is not None:
            object.__setattr__(self, "gpus_per_worker", finite_float(self.gpus_per_worker,
                                                                     "RayEngine(gpus_per_worker)", low=0.0))
        if self.num_cpus is not None:
            object.__setattr__(self, "num_cpus", positive_int(self.num_cpus, "RayEngine(num_cpus)"))
        for field, example in (("address", "'auto' or 'ray://head:10001'"), ("model", "'facebook/musicgen-small'")):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value):
                raise WrongTypeError(f"RayEngine({field}={value!r:.60}): pass None or a name such as {example}")


def as_engine(engine) -> RayEngine:
    """"ray" -> RayEngine(); a RayEngine as it is; anything else is refused naming the choices."""
    if isinstance(engine, RayEngine):
        return engine
    if isinstance(engine, str) and engine == "ray":
        return RayEngine()
    raise BadInputError(f"engine={engine!r}: use 'local', 'ray' or workbench.data.distributed.RayEngine(...)")


def require_ray():
    """The ray module, or MissingExtraError saying how to install it."""
    # Ray's driver turns on its distributed tqdm when a worker's log line first reaches it, and that replaces
    # builtins.print with a Python function for the rest of the process; numba then cannot compile any
    # function that prints (pynndescent's nn_descent: every UMAP after a Ray run failed with "Untyped global
    # name 'print'"). Our progress bar is the driver's own tqdm, so Ray's patch is not needed. Set here, on
    # every path to Ray, so it also holds when the user ran ray.init themselves (it is read at the first line).
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    try:
        import ray
    except ImportError:
        raise MissingExtraError(f"engine='ray' needs Ray, which is not installed: run `{INSTALL}` in the "
                                "workbench's clone (or `pip install 'ray>=2.9'`), or use engine='local'") from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None, attempts: int = 3):
    """ray.init without the dashboard; a local start that times out (Ray waits a fixed 30 s for its raylet,
    too little on a loaded 2-core machine) is tried again, up to `attempts` times."""
    ray = require_ray()
    if address is None:
        start_reaper()
    for attempt in range(attempts):
        try:
            return ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                            logging_level="warning")
        except Exception as error:  # Ray raises a bare Exception for this
            if "timed out during startup" not in str(error) or attempt == attempts - 1:
                raise
            ray.shutdown()


def start_reaper() -> subprocess.Popen | None:
    """Start (once per driver process) the watcher that ends this driver's Ray processes when it dies.

    Linux only (it reads /proc); elsewhere None, and Ray's own clean-up is all there is."""
    global _reaper
    if not os.path.isdir("/proc/self") or (_reaper is not None and _reaper.poll() is None):
        return _reaper
    _reaper = subprocess.Popen([sys.executable, "-c", REAPER, str(os.getpid()), str(REAPER_POLL_S),
                                str(REAPER_GRACE_S)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    return _reaper


def connect(engine: RayEngine):
    """ray, initialised: the cluster already started in this process, else a local one, else engine.address."""
    ray = require_ray()
    if not ray.is_initialized():
        init_ray(engine.address, engine.num_cpus)
    return ray


def _worker_plan(ray, engine: RayEngine, n_batches: int) -> tuple[int, float]:
    """(workers, GPUs per worker) for this cluster; refuses asks the cluster cannot place (they would hang)."""
    total = ray.cluster_resources()
    gpus = engine.gpus_per_worker if engine.gpus_per_worker is not None else (1.0 if total.get("GPU", 0) >= 1 else 0.0)
    if engine.workers is not None:
        n = engine.workers
    elif gpus:
        n = int(total.get("GPU", 0) // gpus)
    else:
        n = int(total.get("CPU", 1) // engine.cpus_per_worker)
    cpus, have_gpus = total.get("CPU", 0), total.get("GPU", 0)
    if n * engine.cpus_per_worker > cpus or n * gpus > have_gpus:
        raise BadInputError(f"{n} workers x ({engine.cpus_per_worker:g} CPU, {gpus:g} GPU) do not fit this Ray "
                            f"cluster ({cpus:g} CPUs, {have_gpus:g} GPUs): ask for fewer workers or resources")
    return max(1, min(n, n_batches)), float(gpus)


def replica_source(handle, engine: RayEngine):
    """What a worker builds its replica from: the driver's weights, or a name to load (engine.model)."""
    if engine.model is not None:
        return dict(name=engine.model, model_id=handle.model_id, dtype=str(handle.dtype).removeprefix("torch."))
    model = handle.model
    return dict(cls=type(model), config=model.config, generation_config=model.generation_config,
                state={k: v.detach().cpu() for k, v in model.state_dict().items()}, processor=handle.processor,
                model_id=handle.model_id, dtype=str(handle.dtype).removeprefix("torch."))


def build_replica(source: dict, device: str):
    """A MusicGenHandle from `replica_source`'s dict, on `device`."""
    import torch
    from transformers.utils import logging as hf_logging

    from workbench.runtime.model import MusicGenHandle, load_model
    if "name" in source:
        handle = load_model(source["name"], device=device, dtype=source["dtype"])
        if handle.model_id != source["model_id"]:
            raise BadInputError(f"RayEngine(model={source['name']!r}) loads {handle.model_id!r} on the workers, "
                                f"but the driver's model is {source['model_id']!r}: pass the same model")
        return handle
    hf_logging.set_verbosity_error()  # a worker process of its own: HF's pad-id warning would repeat per replica
    model = source["cls"](source["config"])
    model.load_state_dict(source["state"])
    model.generation_config = source["generation_config"]
    model = model.to(device=torch.device(device), dtype=getattr(torch, source["dtype"])).eval()
    return MusicGenHandle(model=model, processor=source["processor"], model_id=source["model_id"])


class _Replica:
    """The Ray actor: one model replica; runs `fn(handle, payload)` for the driver."""

    def __init__(self, source_ref: list, device: str, threads: int | None):
        # before torch is imported (the weights arrive as a nested ref, resolved here, after this): idle OpenMP
        # threads sleep, and a CPU worker uses its own CPUs only
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)
        import ray
        import torch
        if threads:
            torch.set_num_threads(threads)
        self.handle = build_replica(ray.get(source_ref[0]), device)

    def pid(self) -> int:
        return os.getpid()

    def run(self, fn, payload):
        return fn(self.handle, payload)


@dataclasses.dataclass
class RunReport:
    """What a Ray run did: workers, batches, rows sent to workers (retries included), retries and failures."""

    workers: int = 0
    batches: int = 0
    dispatched_rows: int = 0
    retried: list = dataclasses.field(default_factory=list)  # (row ids, error) per retry
    failed: list = dataclasses.field(default_factory=list)  # (row ids, error) per batch given up
    replica_start_s: float = 0.0  # until the first replica was ready
    seconds: float = 0.0


def run_batches(handle, batch_rows: list[list[str]], payload: Callable[[int], object], fn: Callable,
                on_result: Callable[[int, object], None], engine: RayEngine) -> RunReport:
    """Run fn(replica, payload(i)) for every batch i on Ray workers; on_result(i, result) on the driver.

    batch_rows: each batch's row ids (named when it fails). payload(i) is built when batch i is dispatched, so
    only the batches in flight are held in memory. Raises DistributedRunError after the other batches finish
    when some still failed after engine.max_retries retries."""
    ray = connect(engine)
    from ray.exceptions import RayActorError, RayTaskError
    started, report = time.perf_counter(), RunReport(batches=len(batch_rows))
    n_workers, gpus = _worker_plan(ray, engine, len(batch_rows))
    report.workers = n_workers
    source = ray.put(replica_source(handle, engine))
    # no runtime_env: a worker Ray has already started (and imported ray in) can take the replica
    replica = ray.remote(_Replica).options(num_cpus=engine.cpus_per_worker, num_gpus=gpus, max_restarts=0)
    device, threads = ("cuda" if gpus else "cpu"), (None if gpus else max(1, int(engine.cpus_per_worker)))
    actors = [replica.remote([source], device, threads) for _ in range(n_workers)]
    try:
        try:  # the first replica up proves the set-up; batches queue behind the others' start-up
            ray.get(ray.wait([a.pid.remote() for a in actors], num_returns=1)[0][0])
        except RayActorError as error:
            raise DistributedRunError(f"a model replica could not start on a Ray worker: {error}. Every node "
                                      "needs workbench installed (pip install -e . there) and room for the model",
                                      [r for rows in batch_rows for r in rows]) from None
        report.replica_start_s = time.perf_counter() - started
        queue, attempts, in_flight, idle = collections.deque(range(len(batch_rows))), [0] * len(batch_rows), {}, \
            list(actors)

        def retry(i: int, error: str) -> None:
            attempts[i] += 1
            if attempts[i] > engine.max_retries:
                report.failed.append((batch_rows[i], error))
            else:
                report.retried.append((batch_rows[i], error))
                queue.append(i)

        def dispatch() -> None:
            while idle and queue:
                i, actor = queue.popleft(), idle.pop()
                in_flight[actor.run.remote(fn, payload(i))] = (i, actor)
                report.dispatched_rows += len(batch_rows[i])

        while queue or in_flight:
            dispatch()
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            i, actor = in_flight.pop(ref)
            try:
                result = ray.get(ref)
            except RayActorError as error:  # the worker died: replace it, retry its batch
                ray.kill(actor)
                actors.remove(actor)
                actor = replica.remote([source], device, threads)
                actors.append(actor)
                idle.append(actor)
                retry(i, f"worker died ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
                continue
            except RayTaskError as error:
                idle.append(actor)
                if isinstance(error.cause, BadInputError):  # the same input fails the same way: no retry
                    raise error.cause from None
                retry(i, f"{type(error.cause).__name__}: {str(error.cause)[:300]}")
                continue
            idle.append(actor)
            dispatch()  # the worker starts its next batch while the driver commits this one
            on_result(i, result)
    finally:
        for actor in actors:
            ray.kill(actor)
    report.seconds = time.perf_counter() - started
    if report.failed:
        rows = [r for ids, _ in report.failed for r in ids]
        first = report.failed[0][1]
        raise DistributedRunError(
            f"{len(report.failed)} batch(es) failed {engine.max_retries + 1} times (RayEngine(max_retries="
            f"{engine.max_retries})): rows {rows[:20]}{' ...' if len(rows) > 20 else ''}; first error: {first}. "
            "Every other batch is done and kept: fix the cause and run the same call again to compute only these",
            rows, report)
    return report
