"""ckpt.batch: jobs in, results out, the same files as one-by-one calls; and the Ray recipe."""

import os

import pytest

import ckpt
from ckpt import batch
from conftest import FIX, read

SRC = FIX / "gguf" / "tiny-llama-spm.f16.gguf"
TYPES = ["Q4_K_M", "Q8_0", "Q6_K"]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    d = tmp_path_factory.mktemp("seq")
    for t in TYPES:
        ckpt.quantize(SRC, d / f"tiny-llama-spm-{t}.gguf", t)
    return d


@pytest.mark.parametrize("parallel", [None, "thread", "process"])
def test_batch_run(tmp_path, sequential, parallel):
    jobs = batch.quant_matrix([SRC], TYPES, out_dir=tmp_path)
    jobs.append({"op": "convert", "src": str(FIX / "torch" / "all_dtypes.bin"), "dst": str(tmp_path / "a.safetensors")})
    jobs.append(batch.ConvertJob(src=str(FIX / "torch" / "all_dtypes.bin"), dst=str(tmp_path / "a.safetensors")))
    results = batch.run(jobs, parallel=parallel, max_workers=2)
    assert [r.ok for r in results[:4]] == [True] * 4
    assert results[4].ok is False and results[4].error_type == "UsageError"
    assert "job 3 of this batch already writes this output" in results[4].error
    for t in TYPES:
        name = f"tiny-llama-spm-{t}.gguf"
        assert read(tmp_path / name) == read(sequential / name), t
    with pytest.raises(ckpt.UsageError):
        batch.run(jobs[4:], raise_errors=True)


def test_ray_recipe(tmp_path, sequential):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in [os.environ.get("PYTHONPATH")] if p)}})
    try:
        results = batch.run_ray(batch.quant_matrix([SRC], TYPES, out_dir=tmp_path), num_cpus=1)
    finally:
        ray.shutdown()
    assert all(r.ok for r in results), [r.error for r in results]
    for t in TYPES:
        name = f"tiny-llama-spm-{t}.gguf"
        assert read(tmp_path / name) == read(sequential / name), t
