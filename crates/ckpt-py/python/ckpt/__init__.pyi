"""Type stubs of the ckpt package."""

import os
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import batch as batch
from . import ollama as ollama
from ._errors import CkptError as CkptError
from ._errors import CkptIOError as CkptIOError
from ._errors import InvalidFileError as InvalidFileError
from ._errors import MismatchError as MismatchError
from ._errors import UnsafeFileError as UnsafeFileError
from ._errors import UnsupportedError as UnsupportedError
from ._errors import UsageError as UsageError

PathLike = Union[str, os.PathLike[str]]
ProgressArg = Union[None, bool, Callable[[Dict[str, Any]], Any]]
Adapter = Union[PathLike, Tuple[PathLike, float]]

__version__: str

def inspect(path_or_uri: PathLike, *, key: Optional[str] = ..., summary: bool = ...) -> Dict[str, Any]: ...
def convert(
    src: PathLike,
    dst: PathLike,
    *,
    to: Optional[str] = ...,
    outtype: Optional[str] = ...,
    dtype: Optional[str] = ...,
    max_shard_size: Union[None, int, str] = ...,
    overwrite: bool = ...,
    verify: bool = ...,
    key: Optional[str] = ...,
    materialize_shared: bool = ...,
    allow_expanded_views: bool = ...,
    intermediate: Optional[str] = ...,
    pre_tokenizer: Optional[str] = ...,
    strict: bool = ...,
    base: Optional[PathLike] = ...,
    base_model_id: Optional[str] = ...,
    dry_run: bool = ...,
    bigendian: bool = ...,
    progress: ProgressArg = ...,
) -> Dict[str, Any]: ...
def quantize(
    src: PathLike,
    dst: PathLike,
    type: str,
    *,
    imatrix: Optional[PathLike] = ...,
    nthreads: Optional[int] = ...,
    pure: bool = ...,
    output_tensor_type: Optional[str] = ...,
    token_embedding_type: Optional[str] = ...,
    leave_output_tensor: bool = ...,
    allow_requantize: bool = ...,
    overwrite: bool = ...,
) -> Dict[str, Any]: ...
def merge_lora(
    base: PathLike,
    adapters: Union[Adapter, Sequence[Adapter]],
    out: PathLike,
    *,
    to: str = ...,
    outtype: Optional[str] = ...,
    dtype: Optional[str] = ...,
    max_shard_size: Union[None, int, str] = ...,
    verify: bool = ...,
    overwrite: bool = ...,
    bigendian: bool = ...,
    progress: ProgressArg = ...,
) -> Dict[str, Any]: ...
def diff(a: PathLike, b: PathLike, *, tolerance: float = ...) -> Dict[str, Any]: ...
def verify(path: PathLike, *, scan_values: bool = ...) -> Dict[str, Any]: ...
def scan(paths: Union[PathLike, Iterable[PathLike]]) -> Dict[str, Any]: ...
def pull(
    repo_id: str,
    revision: Optional[str] = ...,
    *,
    cache_dir: Optional[PathLike] = ...,
    local_dir: Optional[PathLike] = ...,
    allow_patterns: Union[None, str, Sequence[str]] = ...,
    ignore_patterns: Union[None, str, Sequence[str]] = ...,
    token: Optional[str] = ...,
    progress: ProgressArg = ...,
) -> Dict[str, Any]: ...
def push(
    local: PathLike,
    repo_id: str,
    *,
    revision: Optional[str] = ...,
    create_pr: bool = ...,
    path_in_repo: Optional[str] = ...,
    commit_message: Optional[str] = ...,
    commit_description: Optional[str] = ...,
    allow_patterns: Union[None, str, Sequence[str]] = ...,
    ignore_patterns: Union[None, str, Sequence[str]] = ...,
    private: bool = ...,
    create_repo: bool = ...,
    follow_symlinks: bool = ...,
    progress: ProgressArg = ...,
) -> Dict[str, Any]: ...
def load_file(path: PathLike, *, key: Optional[str] = ..., dequantize: bool = ...) -> Dict[str, np.ndarray]: ...
def save_file(
    tensors: Mapping[str, Any],
    path: PathLike,
    metadata: Optional[Mapping[str, str]] = ...,
    *,
    format: Optional[str] = ...,
    overwrite: bool = ...,
) -> None: ...
