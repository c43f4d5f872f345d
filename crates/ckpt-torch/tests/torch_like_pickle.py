"""Writes the data.pkl torch.save would write for a state dict of N float32 tensors of 2x2
elements, each in its own storage: CPython's Pickler at protocol 2 with torch's persistent_id
and Tensor.__reduce_ex__ shape, stand-in modules named like torch's."""
import collections, io, pickle, sys, types
n = int(sys.argv[1]); out = sys.argv[2]
torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch; sys.modules["torch._utils"] = utils; torch._utils = utils
def _rebuild_tensor_v2(*a): pass
_rebuild_tensor_v2.__module__ = "torch._utils"; utils._rebuild_tensor_v2 = _rebuild_tensor_v2
class FloatStorage: pass
FloatStorage.__module__ = "torch"; FloatStorage.__qualname__ = "FloatStorage"; torch.FloatStorage = FloatStorage
class Storage:
    def __init__(self, key): self.key = key
class Tensor:
    def __init__(self, key): self.s = Storage(key); self.size = [2, 2]; self.stride = [2, 1]
    def __reduce_ex__(self, proto):
        return (_rebuild_tensor_v2, (self.s, 0, tuple(self.size), tuple(self.stride), False, collections.OrderedDict()))
sd = collections.OrderedDict()
for i in range(n):
    sd[f"model.layers.{i // 10}.block.{i % 10}.weight"] = Tensor(str(i))
sd._metadata = collections.OrderedDict([("", {"version": 1})])
buf = io.BytesIO()
p = pickle.Pickler(buf, protocol=2)
def pid(o):
    if isinstance(o, Storage):
        return ("storage", FloatStorage, o.key, "cpu", 4)
    return None
p.persistent_id = pid
p.dump(sd)
open(out, "wb").write(buf.getvalue())
