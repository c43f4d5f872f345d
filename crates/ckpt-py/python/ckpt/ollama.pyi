import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

PathLike = Union[str, os.PathLike[str]]

def create(
    name: str,
    source: Optional[PathLike] = ...,
    *,
    modelfile: Optional[PathLike] = ...,
    quantize: Optional[str] = ...,
    template: Optional[str] = ...,
    template_file: Optional[PathLike] = ...,
    system: Optional[str] = ...,
    parameters: Union[None, Mapping[str, Any], Sequence[str]] = ...,
    license: Union[None, str, Sequence[str]] = ...,
    store: Optional[PathLike] = ...,
    progress: Union[None, bool, Callable[[Dict[str, Any]], Any]] = ...,
) -> Dict[str, Any]: ...
