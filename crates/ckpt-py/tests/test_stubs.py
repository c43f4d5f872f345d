"""The type stubs (.pyi) say the same parameters as the functions, and every public function has
a docstring."""

import ast
import inspect as pyinspect
from pathlib import Path

import pytest

import ckpt

PKG = Path(ckpt.__file__).parent


def stub_params(pyi, name):
    tree = ast.parse((PKG / pyi).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            a = node.args
            return (
                [p.arg for p in a.posonlyargs + a.args],
                [p.arg for p in a.kwonlyargs],
            )
    raise AssertionError(f"{name} missing from {pyi}")


def runtime_params(fn):
    sig = pyinspect.signature(fn)
    pos = [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    kw = [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
    return pos, kw


FUNCTIONS = ["inspect", "convert", "quantize", "merge_lora", "diff", "verify", "scan", "pull", "push", "load_file", "save_file"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_stub_matches_function(name):
    fn = getattr(ckpt, name)
    assert stub_params("__init__.pyi", name) == runtime_params(fn)
    assert fn.__doc__ and len(fn.__doc__) > 40, name


def test_ollama_stub_matches():
    assert stub_params("ollama.pyi", "create") == runtime_params(ckpt.ollama.create)
    assert ckpt.ollama.create.__doc__
