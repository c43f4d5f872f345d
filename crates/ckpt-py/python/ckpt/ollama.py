"""Building models into Ollama's store with ckpt's own converter and quantizer
(``ckpt ollama create``), with keyword arguments like the ``ollama`` Python client's
``ollama.create``."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _ckpt, _progress
from ._progress import ProgressArg

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["create"]


def _parameters(parameters: Union[None, Mapping[str, Any], Sequence[str]]) -> List[str]:
    if parameters is None:
        return []
    if isinstance(parameters, Mapping):
        out = []
        for k, v in parameters.items():
            values = v if isinstance(v, (list, tuple)) else [v]
            for item in values:
                if isinstance(item, bool):
                    item = "true" if item else "false"
                out.append(f"{k}={item}")
        return out
    return [str(p) for p in parameters]


def create(
    name: str,
    source: Optional[PathLike] = None,
    *,
    modelfile: Optional[PathLike] = None,
    quantize: Optional[str] = None,
    template: Optional[str] = None,
    template_file: Optional[PathLike] = None,
    system: Optional[str] = None,
    parameters: Union[None, Mapping[str, Any], Sequence[str]] = None,
    license: Union[None, str, Sequence[str]] = None,
    store: Optional[PathLike] = None,
    progress: ProgressArg = None,
) -> Dict[str, Any]:
    """Builds ``name`` into Ollama's store (``$OLLAMA_MODELS``, default ``~/.ollama/models``, or
    ``store``), as ``ckpt ollama create --json``.

    Args:
        name: ``NAME[:TAG]``.
        source: a Hugging Face model folder, a ``.gguf`` file or ``hf://ORG/NAME`` (a Modelfile's
            ``FROM``). Give this or ``modelfile``.
        modelfile: a Modelfile path (``ollama create -f``); it says everything else.
        quantize: any llama-quantize type with ``source`` (``q4_K_M``, ``q8_0``, …); Ollama's
            levels with a Modelfile.
        template: the Go template text (default: matched from the model's chat template, as
            Ollama does). ``template_file`` reads it from a file instead.
        system: the system prompt.
        parameters: ``{"temperature": 0.7, "stop": ["<|im_end|>"]}`` or ``["temperature=0.7"]``.
        license: license text, or several.
        store: the store folder (default: ``$OLLAMA_MODELS`` or ``~/.ollama/models``).
        progress: ``True`` for a tqdm status line, or a callable taking event dicts (``status``).

    Returns:
        ``name``, ``digest`` (the manifest's sha256), ``template`` (the named template detected),
        ``status`` (Ollama's status lines) and ``warnings``.
    """
    if template is not None and template_file is not None:
        from ._errors import UsageError

        raise UsageError("give template (text) or template_file, not both")
    with tempfile.TemporaryDirectory(prefix="ckpt-ollama-") as tmp:
        if template is not None:
            template_file = os.path.join(tmp, "template")
            with open(template_file, "w", encoding="utf-8") as f:
                f.write(template)
        license_file = None
        if license is not None:
            texts = [license] if isinstance(license, str) else list(license)
            license_file = os.path.join(tmp, "license")
            with open(license_file, "w", encoding="utf-8") as f:
                f.write("\n\n".join(texts))
        return json.loads(
            _progress.run(
                _ckpt.ollama_create,
                progress,
                name,
                None if source is None else os.fspath(source),
                modelfile=None if modelfile is None else os.fspath(modelfile),
                quantize=quantize,
                template_file=None if template_file is None else os.fspath(template_file),
                system=system,
                parameters=_parameters(parameters),
                license_file=license_file,
                store=None if store is None else os.fspath(store),
            )
        )
