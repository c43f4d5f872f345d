"""Many conversions at once: a list of jobs in, a list of results out — in this process, on a
thread or process pool, or fanned out over a Ray cluster.

A job is a dict ``{"op": "quantize", "src": ..., "dst": ..., "type": "Q4_K_M"}`` (``op`` is the
name of a ckpt function: ``convert``, ``quantize``, ``merge_lora``, ``diff``, ``verify``,
``inspect``, ``scan``; the other keys are its arguments) or one of the small dataclasses below.

>>> from ckpt import batch
>>> jobs = batch.quant_matrix(["model-f16.gguf"], ["Q4_K_M", "Q8_0"], out_dir="out")  # doctest: +SKIP
>>> results = batch.run(jobs, parallel="thread", max_workers=2)                        # doctest: +SKIP
>>> [r.ok for r in results]                                                            # doctest: +SKIP

Ray recipe (one task per (model, quant type); ``pip install ray``)
------------------------------------------------------------------

Each task runs the library in a Ray worker and returns the same report as a local call; the
files are byte-identical to running the jobs one by one. The workers must see the paths (a
shared filesystem, or ``hf://`` sources and an upload step)::

    import ray
    from ckpt import batch

    ray.init()                           # a local Ray; on a cluster: ray.init(address="auto")
    jobs = batch.quant_matrix(
        ["/shared/models/Qwen2.5-0.5B-f16.gguf", "/shared/models/SmolLM2-135M-f16.gguf"],
        ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"],
        out_dir="/shared/quants",
    )
    results = batch.run_ray(jobs, num_cpus=2)   # 2 CPUs reserved per task
    for r in results:
        print(r.job.dst, "ok" if r.ok else r.error)

``run_ray`` is only a few lines over ``ray.remote(batch.run_job)``; call that yourself to
combine ckpt jobs with other Ray work.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "ConvertJob",
    "QuantizeJob",
    "MergeLoraJob",
    "Job",
    "JobResult",
    "run_job",
    "run",
    "run_ray",
    "quant_matrix",
]


@dataclass
class ConvertJob:
    """``ckpt.convert(src, dst, **options)``."""

    src: str
    dst: str
    options: Dict[str, Any] = field(default_factory=dict)
    op: str = "convert"


@dataclass
class QuantizeJob:
    """``ckpt.quantize(src, dst, type, **options)``."""

    src: str
    dst: str
    type: str
    options: Dict[str, Any] = field(default_factory=dict)
    op: str = "quantize"


@dataclass
class MergeLoraJob:
    """``ckpt.merge_lora(base, adapters, out, **options)``."""

    base: str
    adapters: List[Any]
    out: str
    options: Dict[str, Any] = field(default_factory=dict)
    op: str = "merge_lora"


Job = Union[ConvertJob, QuantizeJob, MergeLoraJob, Dict[str, Any]]


@dataclass
class JobResult:
    """What one job gave: ``report`` (the function's dict) when ``ok``, else ``error`` (the
    message) and ``error_type`` (the exception class name, e.g. ``UsageError``)."""

    job: Any
    ok: bool
    report: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    error_type: Optional[str] = None


_OPS = ("convert", "quantize", "merge_lora", "diff", "verify", "inspect", "scan")


def _call(job: Job) -> Dict[str, Any]:
    import ckpt

    if dataclasses.is_dataclass(job) and not isinstance(job, type):
        d = {f.name: getattr(job, f.name) for f in dataclasses.fields(job)}
        d.update(d.pop("options") or {})
    elif isinstance(job, dict):
        d = dict(job)
    else:
        raise ckpt.UsageError(f"a job is a dict or a ckpt.batch dataclass, not {type(job).__name__}")
    op = d.pop("op", None)
    if op not in _OPS:
        raise ckpt.UsageError(f"unknown job op {op!r} (one of {', '.join(_OPS)})")
    fn: Callable[..., Dict[str, Any]] = getattr(ckpt, op)
    return fn(**d)


def run_job(job: Job) -> JobResult:
    """Runs one job here and returns its result; a ckpt error becomes a failed result (other
    exceptions propagate)."""
    import ckpt

    try:
        return JobResult(job=job, ok=True, report=_call(job))
    except ckpt.CkptError as e:
        return JobResult(job=job, ok=False, error=str(e), error_type=type(e).__name__)


def _output_of(job: Job) -> Optional[str]:
    """The output path a job writes (``dst`` or ``out``), normalised, or ``None``."""
    if dataclasses.is_dataclass(job) and not isinstance(job, type):
        out = getattr(job, "dst", None) or getattr(job, "out", None)
    elif isinstance(job, dict):
        out = job.get("dst") or job.get("out")
    else:
        return None
    if out is None or str(out).startswith("hf://"):
        return None
    return os.path.normcase(os.path.abspath(os.fspath(out)))


def _same_output_errors(jobs: List[Job]) -> Dict[int, JobResult]:
    """A job writing the same output as an earlier job of the batch fails without running, so
    which one wins never depends on how the pool schedules them."""
    first: Dict[str, int] = {}
    failed: Dict[int, JobResult] = {}
    for i, job in enumerate(jobs):
        out = _output_of(job)
        if out is None:
            continue
        if out in first:
            failed[i] = JobResult(
                job=job,
                ok=False,
                error=f"{out}: job {first[out]} of this batch already writes this output (job {i})",
                error_type="UsageError",
            )
        else:
            first[out] = i
    return failed


def _check(results: List[JobResult], raise_errors: bool) -> List[JobResult]:
    if raise_errors:
        for r in results:
            if not r.ok:
                import ckpt

                cls = getattr(ckpt, r.error_type or "CkptError", ckpt.CkptError)
                raise cls(f"job {r.job!r} failed: {r.error}")
    return results


def run(
    jobs: Iterable[Job],
    *,
    parallel: Optional[str] = None,
    max_workers: Optional[int] = None,
    raise_errors: bool = False,
) -> List[JobResult]:
    """Runs ``jobs`` and returns one :class:`JobResult` per job, in order.

    A job that writes the same output as an earlier job of the list fails with ``UsageError``
    without running, whatever the pool's scheduling.

    Args:
        jobs: dicts or job dataclasses.
        parallel: ``None`` (one after the other), ``"thread"`` (a thread pool: ckpt releases the
            GIL, and each job already uses all cores for its heavy parts, so 2–4 workers are
            plenty) or ``"process"`` (a pool of spawned processes; jobs must be picklable).
        max_workers: pool size (default: the executor's).
        raise_errors: raise the first failure (as its ckpt exception class) instead of
            returning it.
    """
    jobs = list(jobs)
    clashes = _same_output_errors(jobs)
    todo = [j for i, j in enumerate(jobs) if i not in clashes]

    def merged(done: Iterable[JobResult]) -> List[JobResult]:
        it = iter(done)
        return _check([clashes[i] if i in clashes else next(it) for i in range(len(jobs))], raise_errors)

    if parallel is None:
        return merged(run_job(j) for j in todo)
    if parallel == "thread":
        from concurrent.futures import ThreadPoolExecutor as Pool
    elif parallel == "process":
        from concurrent.futures import ProcessPoolExecutor as Pool  # type: ignore[assignment]
    else:
        import ckpt

        raise ckpt.UsageError(f"parallel must be None, 'thread' or 'process', not {parallel!r}")
    if parallel == "process":
        # Spawned, not forked: a forked child would inherit ckpt's worker-thread pool without its
        # threads and wait on it forever.
        import multiprocessing

        pool = Pool(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = Pool(max_workers=max_workers)
    with pool:
        return merged(list(pool.map(run_job, todo)))


def run_ray(
    jobs: Iterable[Job],
    *,
    num_cpus: float = 1,
    raise_errors: bool = False,
    **remote_options: Any,
) -> List[JobResult]:
    """Runs each job as one Ray task (``ray.remote(run_job)``) on the Ray instance this process
    is connected to (``ray.init(...)`` first; a local one is started if there is none) and
    returns the results in job order.

    Args:
        num_cpus: CPUs Ray reserves per task (ckpt uses the cores it is given).
        remote_options: more ``ray.remote`` options (``memory``, ``resources``, ``max_retries``…).
    """
    import ray

    jobs = list(jobs)
    clashes = _same_output_errors(jobs)
    task = ray.remote(num_cpus=num_cpus, **remote_options)(run_job)
    refs = {i: task.remote(j) for i, j in enumerate(jobs) if i not in clashes}
    done = dict(zip(refs, ray.get(list(refs.values()))))
    return _check([clashes[i] if i in clashes else done[i] for i in range(len(jobs))], raise_errors)


def quant_matrix(
    models: Sequence[PathLike],
    types: Sequence[str],
    *,
    out_dir: Optional[PathLike] = None,
    pattern: str = "{stem}-{type}.gguf",
    **options: Any,
) -> List[QuantizeJob]:
    """One :class:`QuantizeJob` per (model, type): each GGUF in ``models`` quantized to each of
    ``types``, named by ``pattern`` (``{stem}``: the model file name without ``.gguf`` and a
    trailing ``-f16``/``-F16``/``-f32``/``-bf16``; ``{type}``: the type as given), in ``out_dir``
    (default: beside the model). ``options`` go to every ``ckpt.quantize`` call.
    """
    jobs = []
    for m in models:
        m = os.fspath(m)
        stem = os.path.basename(m)
        if stem.lower().endswith(".gguf"):
            stem = stem[: -len(".gguf")]
        for suffix in ("-f16", "-F16", "-f32", "-F32", "-bf16", "-BF16", ".f16", ".F16"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        folder = os.fspath(out_dir) if out_dir is not None else os.path.dirname(m)
        for t in types:
            dst = os.path.join(folder, pattern.format(stem=stem, type=t))
            jobs.append(QuantizeJob(src=m, dst=dst, type=t, options=dict(options)))
    return jobs
