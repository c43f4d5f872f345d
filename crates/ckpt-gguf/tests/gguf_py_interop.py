"""gguf-py side of the interop test (run by tests/python_interop.rs with $CKPT_PYTHON).

  dump PATH   read PATH with gguf.GGUFReader, print every field and tensor as JSON
  write PATH  write a GGUF exercising every value type and several tensor types with GGUFWriter

In dumps, floats are given as their IEEE bits ("0x...") and strings as UTF-8 hex, so nothing is
lost to JSON.
"""
import hashlib
import json
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as T


def scalar(field, part_index, vtype):
    part = field.parts[part_index]
    if vtype == T.STRING:
        return bytes(part).hex()
    # The part's own byte order: big-endian files are read with swapped dtypes.
    order = part.dtype.byteorder
    if vtype == T.FLOAT32:
        return "0x%08x" % int(part.view(order + "u4")[0])
    if vtype == T.FLOAT64:
        return "0x%016x" % int(part.view(order + "u8")[0])
    if vtype == T.BOOL:
        return bool(part[0])
    return int(part[0])


def dump(path):
    reader = gguf.GGUFReader(path)
    fields = []
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        types = [t.name for t in field.types]
        if types == ["ARRAY"]:
            # gguf-py records no element type for an empty array; it is the part after the
            # key length, key and value type.
            types.append(T(int(field.parts[3][0])).name)
        if field.types[0] == T.ARRAY:
            value = [scalar(field, i, field.types[-1]) for i in field.data]
        else:
            value = scalar(field, field.data[0], field.types[0])
        fields.append({"key": name, "types": types, "value": value})
    tensors = []
    for t in reader.tensors:
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "ne": [int(d) for d in t.shape],
            "n_bytes": int(t.n_bytes),
            "data_offset": int(t.data_offset),
            "sha256": hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest(),
        })
    json.dump({"alignment": int(reader.alignment), "data_offset": int(reader.data_offset),
               "byte_order": reader.endianess.name,
               "fields": fields, "tensors": tensors}, sys.stdout)


def write(path):
    w = gguf.GGUFWriter(path, arch="interop")  # adds general.architecture itself
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 4294967295)
    w.add_int32("t.i32", -2147483648)
    w.add_float32("t.f32", 0.1)
    w.add_float32("t.f32_nan", float("nan"))
    w.add_float32("t.f32_neg_zero", -0.0)
    w.add_uint64("t.u64", 18446744073709551615)
    w.add_int64("t.i64", -9223372036854775808)
    w.add_float64("t.f64", 1e-300)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "naïve ✓ 🙂 \u2581tok\n")
    w.add_key_value("t.arr_u8", [0, 7, 255], T.ARRAY, sub_type=T.UINT8)
    w.add_key_value("t.arr_i16", [-32768, 0, 32767], T.ARRAY, sub_type=T.INT16)
    w.add_key_value("t.arr_u64", [0, 2**64 - 1], T.ARRAY, sub_type=T.UINT64)
    w.add_key_value("t.arr_f64", [0.5, float("-inf")], T.ARRAY, sub_type=T.FLOAT64)
    w.add_array("t.arr_i32", [1, -2, 3])           # ints default to INT32
    w.add_array("t.arr_f32", [1.5, -0.0, 3.25])   # floats default to FLOAT32
    w.add_array("t.arr_str", ["<unk>", "", "▁the"])
    w.add_array("t.arr_bool", [True, False])
    rng = np.random.default_rng(7)
    w.add_tensor("f32_3d", rng.standard_normal((2, 3, 5)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((4, 8)).astype(np.float16))
    w.add_tensor("i32_scalar_like", np.arange(1, dtype=np.int32).reshape(1, 1))
    w.add_tensor("f64", rng.standard_normal(3))
    q8 = gguf.quants.quantize(rng.standard_normal((2, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    {"dump": dump, "write": write}[sys.argv[1]](sys.argv[2])
