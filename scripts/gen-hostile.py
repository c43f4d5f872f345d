"""Writes the hostile-input corpus in tests/fixtures/hostile/ and its expectations in
expected.json: files a safe reader must refuse, each with the exit code and an error substring
`ckpt inspect` must give. Pickle payloads are harmless (they would create a marker file in
$FIXTURE_MARKER_DIR) and are never executed by ckpt. Deterministic: re-running gives the same bytes.

usage: python3 scripts/gen-hostile.py
"""
import io
import json
import os
import struct
import tarfile
import zipfile

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hostile")
os.makedirs(OUT, exist_ok=True)
expected = {}

MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
PROTO = b"\x80\x02M\xe9\x03."
SYSINFO = (
    b"\x80\x02}(X\x10\x00\x00\x00protocol_versionM\xe9\x03X\r\x00\x00\x00little_endian\x88"
    b"X\n\x00\x00\x00type_sizes}(X\x05\x00\x00\x00shortK\x02X\x03\x00\x00\x00intK\x04X\x04\x00\x00\x00longK\x04uu."
)


def uni(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def marker_call(mod, name, marker):
    # mod.name("touch $FIXTURE_MARKER_DIR/marker") -> REDUCE
    return glob(mod, name) + uni(f'touch "${{FIXTURE_MARKER_DIR:-.}}/{marker}"') + b"\x85R"


def legacy(main_pickle):
    return MAGIC + PROTO + SYSINFO + main_pickle


def torch_zip(data_pkl, records=None, folder="archive", compress=False):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        def add(name, data, method=zipfile.ZIP_STORED):
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
        add("data.pkl", data_pkl)
        add("byteorder", b"little")
        for k, v in (records or {}).items():
            add(f"data/{k}", v, zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        add("version", b"3\n")
    return buf.getvalue()


def case(name, data, code, needle):
    os.makedirs(os.path.dirname(os.path.join(OUT, name)), exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    expected[name] = {"exit_code": code, "error_contains": needle}


# --- pickles that reach for code -----------------------------------------------------------
for mod, fn in [("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("subprocess", "check_output"),
                ("builtins", "exec"), ("__builtin__", "eval"), ("builtins", "__import__"), ("builtins", "getattr"),
                ("importlib", "import_module"), ("runpy", "run_path"), ("webbrowser", "open"),
                ("pty", "spawn"), ("shutil", "rmtree"), ("pickle", "loads"), ("torch", "load"),
                ("numpy.core.multiarray", "_reconstruct"), ("torch._utils", "not_a_rebuild")]:
    marker = f"pwned-{mod}-{fn}.marker".replace("_", "-")
    case(f"pickle_{mod}_{fn}.bin".replace(".", "_").replace("_bin", ".bin"),
         torch_zip(b"\x80\x02" + marker_call(mod, fn, marker) + b"."), 4, f"{mod}.{fn}")

# The call hidden inside a tensor dict, after legitimate-looking entries (nested __reduce__).
nested = (b"\x80\x02}(" + uni("a") + b"K\x01" + uni("b") + b"}(" + uni("c") + marker_call("os", "system", "pwned-nested.marker")
          + b"uu.")
case("pickle_nested_reduce.bin", torch_zip(nested), 4, "os.system")
# Protocol 4 STACK_GLOBAL with the callable's name built from memo entries.
p4 = (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00" + b"\x8c\x02os\x94" + b"\x8c\x06system\x94" + b"h\x00h\x01\x93"
      + b"\x8c\x04true\x85R.")
case("pickle_stack_global_memo.bin", torch_zip(p4), 4, "os.system")
# Odd module names: empty, dotted tricks, whitespace, non-ASCII.
case("pickle_global_empty_module.bin", torch_zip(b"\x80\x02" + glob("", "system") + b")R."), 4, "system")
case("pickle_global_dotted.bin", torch_zip(b"\x80\x02" + glob("torch._utils.os", "system") + b")R."), 4, "torch._utils.os.system")
case("pickle_global_spaces.bin", torch_zip(b"\x80\x02" + glob("collections ", "OrderedDict") + b")R."), 4, "OrderedDict")
case("pickle_global_unicode.bin", torch_zip(b"\x80\x02" + "c\u043es\nsystem\n".encode() + b")R."), 4, "system")
# In the legacy format too.
case("legacy_os_system.bin", legacy(b"\x80\x02" + marker_call("os", "system", "pwned-legacy.marker") + b"."), 4, "os.system")

# --- pickles that abuse the machine itself -------------------------------------------------
case("pickle_huge_binunicode.bin", torch_zip(b"\x80\x02X\xff\xff\xff\x7f" + b"A" * 16 + b"."), 3, "BINUNICODE of 2147483647 bytes")
case("pickle_huge_long4.bin", torch_zip(b"\x80\x02\x8b\xff\xff\xff\x7f" + b"\x01" * 8 + b"."), 3, "LONG4")
case("pickle_memo_get_missing.bin", torch_zip(b"\x80\x02h\x05."), 3, "memo")
case("pickle_memo_long_get.bin", torch_zip(b"\x80\x02j\xff\xff\xff\xff."), 3, "memo")
case("pickle_stack_underflow.bin", torch_zip(b"\x80\x02R."), 3, "REDUCE")
case("pickle_no_stop.bin", torch_zip(b"\x80\x02}("), 3, "without STOP")
case("pickle_unknown_opcode.bin", torch_zip(b"\x80\x02\xff."), 3, "0xff")
case("pickle_deep_nesting.bin", torch_zip(b"\x80\x02" + b"(" * 200000 + b"]" + b"."), 3, "nested")
# Containers nested 3000 deep, built bottom-up (EMPTY_LIST x N, APPEND x N): the machine's depth
# budget stops it as it grows.
case("pickle_deep_lists.bin", torch_zip(b"\x80\x02" + b"]" * 3000 + b"a" * 2999 + b"."), 3, "pickle too deep")
# The same depth built top-down through the memo (each list is filled while still empty, so the
# depth shows only when the tree is walked): the flattening walk stops it, without recursing.
top_down = b"\x80\x02]r" + struct.pack("<I", 0)
for i in range(3000):
    top_down += b"]r" + struct.pack("<I", i + 1) + b"a0j" + struct.pack("<I", i + 1)
case("pickle_deep_memo_lists.bin", torch_zip(top_down + b"0j" + struct.pack("<I", 0) + b"."), 3, "nested deeper")
case("pickle_persid_not_storage.bin", torch_zip(b"\x80\x02" + uni("evil") + b"Q."), 3, "persistent id")
# A storage that claims far more bytes than its record.
bogus = (b"\x80\x02}(" + uni("w") + glob("torch._utils", "_rebuild_tensor_v2") + b"(("
         + uni("storage") + glob("torch", "FloatStorage") + uni("0") + uni("cpu") + b"J\xff\xff\xff\x7ftQK\x00K\x10\x85K\x01\x85\x89"
         + glob("collections", "OrderedDict") + b")RtRu.")
case("storage_larger_than_record.bin", torch_zip(bogus, {"0": b"\x00" * 64}), 3, "data/0")
# A zip bomb: the record inflates to 64 MB.
case("zip_bomb.bin", torch_zip(bogus, {"0": b"\x00" * (64 << 20)}, compress=True), 4, "compress")
z = bytearray(torch_zip(b"\x80\x02}."))
case("zip_truncated_directory.bin", bytes(z[: len(z) - 30]), 3, "zip_truncated_directory.bin")
no_folder = io.BytesIO()
with zipfile.ZipFile(no_folder, "w") as zf:
    zf.writestr(zipfile.ZipInfo("data.pkl", date_time=(1980, 1, 1, 0, 0, 0)), b"\x80\x02}.")
case("zip_no_folder.bin", no_folder.getvalue(), 3, "not in a folder")

# --- what `ckpt scan` must find (issue #14) --------------------------------------------------
CMD = 'touch "${FIXTURE_MARKER_DIR:-.}/pwned-scan.marker"'
# Protocol-0/1 call opcodes: INST, OBJ, NEWOBJ_EX, and a protocol-0 STRING argument.
case("pickle_inst_os_system.bin", torch_zip(b"\x80\x02(" + uni(CMD) + b"ios\nsystem\n."), 4, "os.system")
# The same opcodes on an allowlisted class: not unsafe, merely not supported by the loader.
case("pickle_inst_allowlisted.bin", torch_zip(b"\x80\x02(icollections\nOrderedDict\n."), 3, "INST is not supported")
case("pickle_obj_allowlisted.bin", torch_zip(b"\x80\x02(" + glob("collections", "OrderedDict") + b"o."), 3, "OBJ is not supported")
case("pickle_newobj_ex_allowlisted.bin", torch_zip(b"\x80\x04" + glob("collections", "OrderedDict") + b")}\x92."), 3,
     "NEWOBJ_EX is not supported")
case("pickle_obj_os_system.bin", torch_zip(b"\x80\x02(" + glob("os", "system") + uni(CMD) + b"o."), 4, "os.system")
case("pickle_newobj_ex_os_system.bin", torch_zip(b"\x80\x04" + glob("os", "system") + b")}\x92."), 4, "os.system")
case("pickle_protocol0_os_system.bin", torch_zip(glob("os", "system") + b"(S'" + CMD.replace('"', '\\"').encode() + b"'\ntR."), 4, "os.system")
# A plain pickle (not a torch checkpoint) under a checkpoint's name: torch.load unpickles it.
case("plain_pickle/pytorch_model.bin", b"\x80\x02" + marker_call("os", "system", "pwned-plain.marker") + b".", 3, "unrecognised first bytes")


def torch_zip_ordered(names_data, folder="archive"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in names_data:
            z.writestr(zipfile.ZipInfo(f"{folder}/{name}", date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


evil = b"\x80\x02" + marker_call("os", "system", "pwned-zip.marker") + b"."
case("zip_serialization_id_first.bin", torch_zip_ordered(
    [(".data/serialization_id", b"1234567890"), ("data.pkl", evil), ("byteorder", b"little"), ("version", b"3\n")]),
    4, "os.system")


def raw_zip(records, base=0, gap_after=None, size_extra=None, local_names=None, comment=b""):
    """A STORED zip built by hand: records [(name, data)], offsets shifted by `base` (the archive
    starts at that byte of the file), optional junk after record `gap_after`, a central-directory
    size enlarged for record `size_extra[0]` by `size_extra[1]`, local names replaced."""
    import zlib
    out, cd = b"", b""
    for i, (name, data) in enumerate(records):
        lname = (local_names or {}).get(i, name).encode()
        crc = zlib.crc32(data)
        off = base + len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(lname), 0) + lname + data
        size = len(data) + (size_extra[1] if size_extra and size_extra[0] == i else 0)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, crc, size, size, len(name.encode()), 0, 0, 0, 0, 0, off) + name.encode()
        if gap_after == i:
            out += b"JUNK" * 4
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(records), len(records), len(cd), base + len(out), len(comment))
    return out + cd + eocd + comment


benign = [("archive/data.pkl", b"\x80\x02}."), ("archive/byteorder", b"little"), ("archive/version", b"3\n")]
payload = [("archive/data.pkl", evil), ("archive/byteorder", b"little"), ("archive/version", b"3\n")]
# Two archives: the second (with the payload) inside the first's comment, its end record last in
# the file (miniz and zipfile read it) but not ending the file (the old ckpt read the first).
first = raw_zip(benign)
second = raw_zip(payload, base=len(first))
case("zip_two_archives.bin", raw_zip(benign, comment=second + b"\0"), 4, "end-of-central-directory signatures")
case("zip_overlapping_records.bin", raw_zip(benign, size_extra=(0, 36)), 4, "overlaps")
case("zip_local_name_mismatch.bin", raw_zip(benign, local_names={0: "archive/data.pkx"}), 4, "local header")
case("zip_junk_between_records.bin", raw_zip(benign, gap_after=0), 4, "belong to no record")

# Pickle bombs: a leaf shared through 24 levels of DUP/TUPLE2 names 2**24 values from a few
# hundred bytes; flattening must refuse it by its budget without expanding it.
tensor_leaf = (glob("torch._utils", "_rebuild_tensor_v2") + b"((" + uni("storage") + glob("torch", "FloatStorage")
               + uni("0") + uni("cpu") + b"K\x01tQK\x00K\x01\x85K\x01\x85\x89" + glob("collections", "OrderedDict") + b")RtR")
case("pickle_bomb_tensors.bin", torch_zip(b"\x80\x02}" + uni("w") + tensor_leaf + b"2\x86" * 24 + b"s.", {"0": b"\x00" * 4}),
     3, "pickle bomb")
case("pickle_bomb_lists.bin", torch_zip(b"\x80\x02}" + uni("w") + b"K\x07" + b"2\x86" * 24 + b"s."), 3, "pickle bomb")
# Shared dicts: every level names both halves, so keys repeat 2**24 times.
dict_bomb = b"\x80\x02K\x01" + (b"q\x000}(" + uni("a") + b"h\x00" + uni("b") + b"h\x00u") * 24
case("pickle_bomb_dicts.bin", torch_zip(dict_bomb + b"."), 3, "pickle bomb")

# --- the legacy tar format (torch < 0.4) -------------------------------------------------------
# torch.load reads members `storages` (a count pickle, then per storage an argument pickle, an
# int64 element count and the raw bytes, then a storage-views pickle), `tensors` (a count
# pickle, then per tensor an argument pickle, int32 ndim, 4 bytes, sizes, strides, offset) and
# `pickle`. ckpt does not read the format (inspect/convert: exit 3, not a format it knows) but
# `ckpt scan` walks every pickle in it.
def tar_file(members, fmt=tarfile.GNU_FORMAT):
    """members: [(name, data)] or [(name, data, {"type": ..., "linkname": ..., "pax": {...}})]."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for m in members:
            name, data, extra = (m + ({},))[:3]
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uname = info.gname = ""
            if "type" in extra:
                info.type, info.linkname, info.size = extra["type"], extra["linkname"], 0
            info.pax_headers = extra.get("pax", {})
            t.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()


def storage_args(key, storage=glob("torch", "FloatStorage")):
    return b"\x80\x02" + uni(key) + uni("cpu") + storage + b"\x87."


def storages_member(n=1, extra_args=None, views=b"\x80\x02]."):
    out = b"\x80\x02K" + bytes([n + (1 if extra_args else 0)]) + b"."
    for i in range(n):
        out += storage_args(str(i)) + struct.pack("<q", 4) + b"\0" * 16
    if extra_args:
        out += extra_args + struct.pack("<q", 4) + b"\0" * 16
    return out + views


def tensor_record(args):
    return args + struct.pack("<ii", 1, 0) + struct.pack("<qqq", 4, 1, 0)


TENSOR_ARGS = b"\x80\x02" + uni("1") + uni("0") + glob("torch", "FloatTensor") + b"\x87."


def tensors_member(extra=None):
    recs = [tensor_record(TENSOR_ARGS)] + ([tensor_record(extra)] if extra else [])
    return b"\x80\x02K" + bytes([len(recs)]) + b"." + b"".join(recs)


MAIN = b"\x80\x02}" + uni("w") + uni("1") + b"Qs."
SYS = b"\x80\x02}" + uni("little_endian") + b"\x88s."
evil_tar = b"\x80\x02" + marker_call("os", "system", "pwned-tar.marker") + b"."


def legacy_tar(storages=None, tensors=None, pickle=MAIN, extra=(), fmt=tarfile.GNU_FORMAT):
    return tar_file([("sys_info", SYS), ("storages", storages or storages_member()),
                     ("tensors", tensors or tensors_member()), ("pickle", pickle), *extra], fmt)


TAR_NEEDLE = "unrecognised first bytes"
case("tar_clean.tar", legacy_tar(), 3, TAR_NEEDLE)
case("tar_pickle_os_system.tar", legacy_tar(pickle=evil_tar), 3, TAR_NEEDLE)
case("tar_storage_args_os_system.tar", legacy_tar(storages=storages_member(1, evil_tar)), 3, TAR_NEEDLE)
case("tar_storage_type_os_system.tar", legacy_tar(storages=storages_member(1, storage_args("9", glob("os", "system")))), 3,
     TAR_NEEDLE)
case("tar_storage_views_os_system.tar", legacy_tar(storages=storages_member(1, views=evil_tar)), 3, TAR_NEEDLE)
case("tar_tensor_args_os_system.tar", legacy_tar(tensors=tensors_member(evil_tar)), 3, TAR_NEEDLE)
# The member named `pickle` only by a PAX `path` record (its ustar name is harmless).
case("tar_pax_path_pickle.tar", tar_file([("sys_info", SYS), ("storages", storages_member()), ("tensors", tensors_member()),
                                          ("notes.txt", evil_tar, {"pax": {"path": "pickle"}})], tarfile.PAX_FORMAT),
     3, TAR_NEEDLE)
# `pickle` is a hard link to another member (tarfile's extractfile follows it).
case("tar_hardlink_pickle.tar", tar_file([("sys_info", SYS), ("storages", storages_member()), ("tensors", tensors_member()),
                                          ("payload", evil_tar),
                                          ("pickle", b"", {"type": tarfile.LNKTYPE, "linkname": "payload"})]),
     3, TAR_NEEDLE)
# Two members named `pickle`: torch reads the last.
case("tar_duplicate_pickle.tar", legacy_tar(extra=[("pickle", evil_tar)]), 3, TAR_NEEDLE)

# --- safetensors headers -------------------------------------------------------------------
def st(header, data=b""):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data

case("st_header_len_huge.safetensors", struct.pack("<Q", 1 << 62) + b"{}", 3, "limit")
case("st_header_len_past_eof.safetensors", struct.pack("<Q", 4096) + b"{}", 3, "truncated")
case("st_offsets_overflow.safetensors", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}}'), 3, "contiguous")
case("st_shape_overflow.safetensors", st('{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}', b"\0" * 4), 3, "overflow")
case("st_duplicate_names.safetensors", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4), 3, "duplicate")
case("st_overlap.safetensors", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', b"\0" * 12), 3, "contiguous")
case("st_many_dims.safetensors", st('{"a":{"dtype":"F32","shape":[' + ",".join(["1"] * 10000) + '],"data_offsets":[0,4]}}', b"\0" * 4), 0, "")
case("st_nul_padding.safetensors", st(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}\0\0\0', b"\0" * 4), 3, "JSON")
case("st_bad_utf8.safetensors", st(b'{"\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4), 3, "UTF-8")
case("lfs_pointer.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n", 3, "LFS")
case("lfs_pointer.bin", b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n", 3, "LFS")
case("empty.bin", b"", 3, "empty.bin")

# --- GGUF headers ------------------------------------------------------------------------------
def gstr(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b

def gguf(kvs=(), tensors=(), n_tensors=None, n_kv=None, version=3):
    out = b"GGUF" + struct.pack("<I", version)
    out += struct.pack("<Q", len(tensors) if n_tensors is None else n_tensors)
    out += struct.pack("<Q", len(kvs) if n_kv is None else n_kv)
    for k, raw in kvs:
        out += gstr(k) + raw
    for name, dims, typ, off in tensors:
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<I", typ) + struct.pack("<Q", off)
    return out + b"\0" * (-len(out) % 32)

arch = ("general.architecture", struct.pack("<I", 8) + gstr("llama"))
case("gguf_tensor_count_huge.gguf", gguf([arch], n_tensors=1 << 60), 3, "tensor")
case("gguf_kv_count_huge.gguf", gguf([arch], n_kv=1 << 61), 3, "gguf_kv_count_huge.gguf")
case("gguf_string_length_huge.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 62) + b"key" + b"\0" * 24, 3, "string")
case("gguf_array_count_huge.gguf", gguf([("a", struct.pack("<I", 9) + struct.pack("<I", 4) + struct.pack("<Q", 1 << 61))]), 3, "gguf_array_count_huge.gguf")
case("gguf_too_many_dims.gguf", gguf([arch], [("t", [1, 1, 1, 1, 1], 0, 0)]), 3, "dim")
case("gguf_dim_overflow.gguf", gguf([arch], [("t", [1 << 62, 1 << 62], 0, 0)]), 3, "gguf_dim_overflow.gguf")
case("gguf_offset_out_of_file.gguf", gguf([arch], [("t", [8], 0, 1 << 40)]), 3, "gguf_offset_out_of_file.gguf")
case("gguf_duplicate_tensor.gguf", gguf([arch], [("t", [8], 0, 0), ("t", [8], 0, 32)]) + b"\0" * 64, 3, "duplicate")
case("gguf_duplicate_key.gguf", gguf([arch, arch]), 3, "duplicate")
case("gguf_unknown_type.gguf", gguf([arch], [("t", [8], 4242, 0)]) + b"\0" * 32, 3, "4242")
case("gguf_version_99.gguf", gguf([arch], version=99), 3, "version")

with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(expected, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"{len(expected)} cases in {os.path.normpath(OUT)}")
