"""ckpt: convert, inspect, quantize and merge ML checkpoints (safetensors, PyTorch ``.bin``,
GGUF) from Python, without torch and without executing anything from a file.

The functions are the ``ckpt`` command line's, run in-process by the same Rust library: every
one returns the document ``ckpt … --json`` prints (as a dict), releases the GIL while it works,
and raises a :class:`CkptError` subclass per kind of failure. Model arguments may be local paths
or ``hf://ORG/NAME`` (resolved through the Hugging Face cache).

>>> import ckpt
>>> ckpt.convert("pytorch_model.bin", "model.safetensors")          # doctest: +SKIP
>>> ckpt.convert("./Qwen2.5-0.5B", "qwen-Q4_K_M.gguf", outtype="q4_k_m")  # doctest: +SKIP
>>> tensors = ckpt.load_file("pytorch_model.bin")   # dict of numpy arrays, no torch  # doctest: +SKIP

Progress: every long operation takes ``progress=``: ``True`` for tqdm bars (when tqdm is
installed), or a callable receiving event dicts (see :data:`ckpt._progress.ProgressEvent`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _ckpt, _progress
from ._errors import (
    CkptError,
    CkptIOError,
    InvalidFileError,
    MismatchError,
    UnsafeFileError,
    UnsupportedError,
    UsageError,
)
from ._progress import ProgressArg
from ._tensors import load_file, save_file

__version__: str = _ckpt.version()

PathLike = Union[str, "os.PathLike[str]"]
Adapter = Union[PathLike, Tuple[PathLike, float]]


def _path(p: PathLike) -> str:
    return os.fspath(p)


def _size(v: Union[None, int, str]) -> Optional[int]:
    if v is None or isinstance(v, int):
        return v
    try:
        return _ckpt.parse_size(v)
    except ValueError as e:
        raise UsageError(str(e)) from None


def inspect(path_or_uri: PathLike, *, key: Optional[str] = None, summary: bool = False) -> Dict[str, Any]:
    """What a checkpoint holds, from its headers only (``ckpt inspect --json``).

    Args:
        path_or_uri: a ``.safetensors``, ``.bin``/``.pt`` or ``.gguf`` file, an
            ``*.index.json``, a model folder, or ``hf://ORG/NAME[/FILE]`` (read remotely with range
            requests, nothing downloaded in full).
        key: for a pickled checkpoint, use only this entry (``"state_dict"``).
        summary: GGUF: keep only the first 64 items of long metadata arrays.

    Returns:
        ``format``, ``files``, ``tensors`` (name, dtype, shape, bytes…), ``parameters`` per
        dtype, ``total_parameters``, ``total_bytes``, ``metadata`` (and ``values``: the non-tensor
        entries of a pickled checkpoint).
    """
    return json.loads(_ckpt.inspect(_path(path_or_uri), key=key, summary=summary))


def convert(
    src: PathLike,
    dst: PathLike,
    *,
    to: Optional[str] = None,
    outtype: Optional[str] = None,
    dtype: Optional[str] = None,
    max_shard_size: Union[None, int, str] = None,
    overwrite: bool = False,
    verify: bool = True,
    key: Optional[str] = None,
    materialize_shared: bool = False,
    allow_expanded_views: bool = False,
    intermediate: Optional[str] = None,
    pre_tokenizer: Optional[str] = None,
    strict: bool = False,
    base: Optional[PathLike] = None,
    base_model_id: Optional[str] = None,
    dry_run: bool = False,
    bigendian: bool = False,
    progress: ProgressArg = None,
) -> Dict[str, Any]:
    """Converts a checkpoint (``ckpt convert SRC DST --json``).

    * safetensors ⇄ PyTorch ``.bin`` (a file or a whole model folder, shards and companion
      files), re-read and compared tensor by tensor before it is put in place;
    * a Hugging Face model folder → GGUF (``dst`` ending in ``.gguf`` or ``to="gguf"``), byte
      for byte as llama.cpp's ``convert_hf_to_gguf.py``, with any llama-quantize ``outtype``;
    * a PEFT LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors`` or
      ``.bin``) → a GGUF adapter (``dst`` ending in ``.gguf``), byte for byte as llama.cpp's
      ``convert_lora_to_gguf.py`` (``ckpt convert ADAPTER adapter.gguf --base BASE``);
    * a GGUF → a Hugging Face folder (dequantized, config and tokenizer rebuilt).

    Args:
        src: file, folder or ``hf://ORG/NAME``.
        dst: output file or folder (written atomically).
        to: ``"safetensors"``, ``"bin"`` or ``"gguf"`` (default: from ``dst``).
        outtype: GGUF output type: ``auto``, ``f32``, ``f16``, ``bf16``, ``q8_0``, or a
            llama-quantize type (``q4_k_m``, ``q6_k``, …). For a LoRA adapter: ``f32`` (the
            default, as in ``convert_lora_to_gguf.py``), ``f16``, ``bf16``, ``q8_0`` or ``auto``.
        dtype: cast floating-point tensors (``f32``, ``f16``, ``bf16``) for safetensors/.bin.
        max_shard_size: shard the output (bytes, or ``"5GB"`` as huggingface_hub writes it).
        overwrite: replace an existing output (else :class:`UsageError`).
        verify: re-read and compare the written tensors (safetensors/.bin).
        key: for a pickled training checkpoint, the entry holding the weights.
        materialize_shared: write every tensor that shares memory (default: once, as
            safetensors' ``convert.py``).
        allow_expanded_views: write views far larger than their storage (``expand()``).
        intermediate: GGUF with a llama-quantize outtype: ``f16`` (default), ``bf16`` or ``f32``.
        pre_tokenizer: GGUF: override the detected pre-tokenizer name.
        strict: GGUF → Hugging Face: refuse architectures without a Hugging Face mapping.
        base: LoRA adapter → GGUF: the base model folder (or ``hf://ORG/NAME``); only its
            ``config.json`` is read (``convert_lora_to_gguf.py --base``). Default: the
            adapter's ``base_model_name_or_path`` when that is a local folder.
        base_model_id: LoRA adapter → GGUF: the base model's Hub id (``ORG/NAME``); only its
            ``config.json`` is downloaded, into the Hugging Face cache
            (``convert_lora_to_gguf.py --base-model-id``); ``base`` is then ignored.
        dry_run: GGUF output (a model with ``auto``/``f32``/``f16``/``bf16``/``q8_0``, or a
            LoRA adapter): plan the whole file and report it (``bytes`` is the size the file
            would have), writing nothing, as the scripts' ``--dry-run``.
        bigendian: GGUF output (a model with ``auto``/``f32``/``f16``/``bf16``/``q8_0``, or a
            LoRA adapter): a big-endian file for big-endian hosts (s390x), the bytes of the
            scripts' ``--bigendian`` (header numbers and F32/F16 data byte-swapped, BF16 and
            Q8_0 data as in a little-endian file). A llama-quantize ``outtype`` raises
            :class:`UsageError` (llama-quantize writes little-endian files only).
        progress: ``True`` for tqdm bars, or a callable taking event dicts.

    Returns:
        the conversion report.
    """
    return json.loads(
        _progress.run(
            _ckpt.convert,
            progress,
            _path(src),
            _path(dst),
            to=to,
            outtype=outtype,
            dtype=dtype,
            max_shard_size=_size(max_shard_size),
            overwrite=overwrite,
            verify=verify,
            key=key,
            materialize_shared=materialize_shared,
            allow_expanded_views=allow_expanded_views,
            intermediate=intermediate,
            pre_tokenizer=pre_tokenizer,
            strict=strict,
            base=None if base is None else _path(base),
            base_model_id=base_model_id,
            dry_run=dry_run,
            bigendian=bigendian,
        )
    )


def quantize(
    src: PathLike,
    dst: PathLike,
    type: str,
    *,
    imatrix: Optional[PathLike] = None,
    nthreads: Optional[int] = None,
    pure: bool = False,
    output_tensor_type: Optional[str] = None,
    token_embedding_type: Optional[str] = None,
    leave_output_tensor: bool = False,
    allow_requantize: bool = False,
    overwrite: bool = False,
) -> Dict[str, Any]:
    """Quantizes a GGUF like ``llama-quantize SRC DST TYPE`` (the same bytes), as
    ``ckpt quantize --json``.

    Args:
        src: an F32/F16/BF16 GGUF (or ``hf://…``); a quantized one needs ``allow_requantize``.
        dst: the output GGUF.
        type: ``Q4_K_M``, ``Q8_0``, ``Q6_K``, ``IQ4_XS``, … (case-insensitive).
        imatrix: an importance matrix from llama-imatrix (GGUF or legacy ``.dat``).
        nthreads: worker threads (default: all cores); the output does not depend on it.
        pure: no per-tensor type mix.
        output_tensor_type / token_embedding_type: types for ``output.weight`` /
            ``token_embd.weight``.
        leave_output_tensor: keep ``output.weight`` unquantized.
        allow_requantize: accept an already quantized input.
        overwrite: replace an existing output.

    Returns:
        per-tensor types and sizes (``tensors``), ``ftype``, ``input_bytes``, ``output_bytes``.
    """
    return json.loads(
        _ckpt.quantize(
            _path(src),
            _path(dst),
            type,
            imatrix=None if imatrix is None else _path(imatrix),
            nthreads=nthreads,
            pure=pure,
            output_tensor_type=output_tensor_type,
            token_embedding_type=token_embedding_type,
            leave_output_tensor=leave_output_tensor,
            allow_requantize=allow_requantize,
            overwrite=overwrite,
        )
    )


def _adapters(adapters: Union[Adapter, Sequence[Adapter]]) -> List[Tuple[str, Optional[float]]]:
    if isinstance(adapters, (str, os.PathLike)) or (
        isinstance(adapters, tuple) and len(adapters) == 2 and isinstance(adapters[1], (int, float))
    ):
        adapters = [adapters]  # type: ignore[list-item]
    out: List[Tuple[str, Optional[float]]] = []
    for a in adapters:  # type: ignore[union-attr]
        if isinstance(a, tuple):
            out.append((_path(a[0]), float(a[1])))
        else:
            out.append((_path(a), None))
    return out


def merge_lora(
    base: PathLike,
    adapters: Union[Adapter, Sequence[Adapter]],
    out: PathLike,
    *,
    to: str = "safetensors",
    outtype: Optional[str] = None,
    dtype: Optional[str] = None,
    max_shard_size: Union[None, int, str] = None,
    verify: bool = True,
    overwrite: bool = False,
    bigendian: bool = False,
    progress: ProgressArg = None,
) -> Dict[str, Any]:
    """Merges PEFT LoRA adapters into their base model (PEFT's ``merge_and_unload`` math:
    LoRA, rsLoRA, DoRA), streaming, as ``ckpt merge-lora --json``.

    Args:
        base: the base model folder (or ``hf://…``).
        adapters: an adapter folder, a ``(folder, weight)`` pair, or a list of them, merged in
            order; a string ``"DIR:0.5"`` carries its weight as on the command line.
        out: the output folder (or ``.gguf`` file with ``to="gguf"``).
        to: ``"safetensors"``, ``"bin"`` or ``"gguf"``.
        outtype: GGUF type with ``to="gguf"``.
        dtype: cast floating-point tensors of the output.
        max_shard_size: shard the output folder.
        verify: re-read and compare every written tensor with the computed merge.
        overwrite: replace an existing output.
        bigendian: with ``to="gguf"`` (``auto``/``f32``/``f16``/``bf16``/``q8_0``): a
            big-endian GGUF, the bytes ``convert_hf_to_gguf.py --bigendian`` writes for the
            merged folder.
        progress: ``True`` for tqdm bars, or a callable taking event dicts.
    """
    return json.loads(
        _progress.run(
            _ckpt.merge_lora,
            progress,
            _path(base),
            _adapters(adapters),
            _path(out),
            to=to,
            outtype=outtype,
            dtype=dtype,
            max_shard_size=_size(max_shard_size),
            verify=verify,
            overwrite=overwrite,
            bigendian=bigendian,
        )
    )


def diff(a: PathLike, b: PathLike, *, tolerance: float = 0.0) -> Dict[str, Any]:
    """Compares two checkpoints tensor by tensor, across formats (``ckpt diff --json``); a GGUF
    against a Hugging Face checkpoint goes through its Hugging Face view.

    Returns:
        ``same``, per-tensor ``compared`` entries (max abs error, rmse, cosine), ``only_in_a``,
        ``only_in_b``, counts. A difference is reported, not raised.
    """
    return json.loads(_ckpt.diff(_path(a), _path(b), tolerance=tolerance))


def verify(path: PathLike, *, scan_values: bool = False) -> Dict[str, Any]:
    """Checks a checkpoint's integrity (``ckpt verify --json``): every file parses with full
    validation, shards are complete, Hugging Face cache blobs match their sha256; with
    ``scan_values`` also NaN/Inf. Problems are findings (``ok`` is False), not exceptions.
    """
    return json.loads(_ckpt.verify(_path(path), scan_values=scan_values))


def scan(paths: Union[PathLike, Iterable[PathLike]]) -> Dict[str, Any]:
    """What files would import and call if torch (or pickle) loaded them, found statically
    (``ckpt scan --json``; picklescan's job). Nothing is executed.

    Args:
        paths: a file or folder, or several (folders are walked; files are recognised by content).

    Returns:
        ``files`` (one entry each: ``verdict`` ``clean``/``DANGEROUS``/``unscanned``, ``globals``,
        ``calls``, ``dangerous``), and ``dangerous_files``, ``unscanned_files``, ``clean_files``,
        ``skipped_files``. Unlike the command line (exit code 4) a dangerous file is reported,
        not raised.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return json.loads(_ckpt.scan([_path(p) for p in paths]))


def pull(
    repo_id: str,
    revision: Optional[str] = None,
    *,
    cache_dir: Optional[PathLike] = None,
    local_dir: Optional[PathLike] = None,
    allow_patterns: Union[None, str, Sequence[str]] = None,
    ignore_patterns: Union[None, str, Sequence[str]] = None,
    token: Optional[str] = None,
    progress: ProgressArg = None,
) -> Dict[str, Any]:
    """Downloads a Hub repository into the Hugging Face cache (or ``local_dir``), resumable and
    sha256-verified, like ``huggingface_hub.snapshot_download`` (``ckpt pull --json``).

    Settings come from the environment (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``, …).

    Returns:
        ``snapshot`` (the local folder), ``commit``, ``files``, ``downloaded_bytes``.
    """
    return json.loads(
        _progress.run(
            _ckpt.pull,
            progress,
            repo_id,
            revision,
            cache_dir=None if cache_dir is None else _path(cache_dir),
            local_dir=None if local_dir is None else _path(local_dir),
            allow_patterns=_patterns(allow_patterns),
            ignore_patterns=_patterns(ignore_patterns),
            token=token,
        )
    )


def _patterns(p: Union[None, str, Sequence[str]]) -> List[str]:
    if p is None:
        return []
    if isinstance(p, str):
        return [p]
    return list(p)


def push(
    local: PathLike,
    repo_id: str,
    *,
    revision: Optional[str] = None,
    create_pr: bool = False,
    path_in_repo: Optional[str] = None,
    commit_message: Optional[str] = None,
    commit_description: Optional[str] = None,
    allow_patterns: Union[None, str, Sequence[str]] = None,
    ignore_patterns: Union[None, str, Sequence[str]] = None,
    private: bool = False,
    create_repo: bool = False,
    follow_symlinks: bool = False,
    progress: ProgressArg = None,
) -> Dict[str, Any]:
    """Uploads a file or folder to the Hub in one commit (or a pull request with
    ``create_pr``), like ``huggingface_hub.upload_folder`` (``ckpt push --json``).
    """
    return json.loads(
        _progress.run(
            _ckpt.push,
            progress,
            _path(local),
            repo_id,
            revision=revision,
            create_pr=create_pr,
            path_in_repo=path_in_repo,
            commit_message=commit_message,
            commit_description=commit_description,
            allow_patterns=_patterns(allow_patterns),
            ignore_patterns=_patterns(ignore_patterns),
            private=private,
            create_repo=create_repo,
            follow_symlinks=follow_symlinks,
        )
    )


from . import batch, ollama  # noqa: E402  (they use the functions above)

__all__ = [
    "__version__",
    "inspect",
    "convert",
    "quantize",
    "merge_lora",
    "diff",
    "verify",
    "scan",
    "pull",
    "push",
    "load_file",
    "save_file",
    "ollama",
    "batch",
    "CkptError",
    "InvalidFileError",
    "UnsafeFileError",
    "UnsupportedError",
    "UsageError",
    "MismatchError",
    "CkptIOError",
]
