"""``bigendian=True`` of ckpt.convert and ckpt.merge_lora: the bytes llama.cpp's converters write
with ``--bigendian`` (tests/fixtures/bigendian, by scripts/gen-bigendian-fixtures.py): models,
LoRA adapters, and PEFT's merge converted by convert_hf_to_gguf.py --bigendian."""

import hashlib
import json

import pytest

import ckpt
from conftest import FIX, ROOT, read

BE = FIX / "bigendian"
MANIFEST = json.loads((BE / "manifest.json").read_text())
MODELS = {k: v for k, v in MANIFEST["models"].items() if not v["mmproj"]}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_is_the_converters_big_endian_file(tmp, name):
    e = MODELS[name]
    out = tmp / name
    rep = ckpt.convert(ROOT / e["source"], out, outtype=e["outtype"], bigendian=True)
    got = read(out)
    assert rep["bytes"] == len(got) == e["size"]
    assert hashlib.sha256(got).hexdigest() == e["sha256"], "differs from convert_hf_to_gguf.py --bigendian"
    if e["stored"]:
        assert got == read(BE / name)
    else:
        header = read(BE / name.replace(".gguf", ".header"))
        assert got[: len(header)] == header
    assert ckpt.inspect(out)["byte_order"] == "big"


@pytest.mark.parametrize("name", sorted(MANIFEST["adapters"]))
def test_adapter_is_the_converters_big_endian_file(tmp, name):
    e = MANIFEST["adapters"][name]
    out = tmp / name
    ckpt.convert(FIX / e["adapter"], out, base=FIX / e["base"], outtype=e["outtype"], bigendian=True)
    assert read(out) == read(BE / "lora" / name), "differs from convert_lora_to_gguf.py --bigendian"


def test_merge_to_gguf_is_peft_merge_converted_big_endian(tmp):
    (name, e), = MANIFEST["merges"].items()
    # general.name comes from the merged folder's name: the output's stem
    out = tmp / f"{e['folder']}.gguf"
    rep = ckpt.merge_lora(ROOT / e["base"], ROOT / e["adapter"], out, to="gguf",
                          outtype=e["outtype"], bigendian=True)
    assert rep["gguf"]["bytes"] == out.stat().st_size
    assert read(out) == read(BE / "merge" / name), \
        "differs from PEFT's merge converted by convert_hf_to_gguf.py --bigendian"
    # the default stays little-endian
    le = tmp / "le" / f"{e['folder']}.gguf"
    le.parent.mkdir()
    ckpt.merge_lora(ROOT / e["base"], ROOT / e["adapter"], le, to="gguf", outtype=e["outtype"])
    assert ckpt.inspect(le)["byte_order"] == "little"
    assert read(le) != read(out)


def test_bigendian_is_refused_where_no_big_endian_gguf_is_written(tmp):
    model = ROOT / "examples" / "tiny-llama"
    with pytest.raises(ckpt.UsageError, match="bigendian"):
        ckpt.convert(model, tmp / "st", bigendian=True)
    with pytest.raises(ckpt.UsageError, match="bigendian"):
        ckpt.convert(model, tmp / "q.gguf", outtype="q4_k_m", bigendian=True)
    e = MANIFEST["merges"]["tiny-llama-merged.f16.be.gguf"]
    with pytest.raises(ckpt.UsageError, match="bigendian"):
        ckpt.merge_lora(ROOT / e["base"], ROOT / e["adapter"], tmp / "merged", bigendian=True)
    with pytest.raises(ckpt.UsageError, match="bigendian"):
        ckpt.merge_lora(ROOT / e["base"], ROOT / e["adapter"], tmp / "m.gguf", to="gguf",
                        outtype="q4_k_m", bigendian=True)
    assert list(tmp.iterdir()) == []
