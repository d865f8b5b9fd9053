"""Builds tests/models/faulty/model.onnx: a model that fails in ONNX Runtime on demand.

value = Gather(table, index): input `index` INT64 [N, 1] picks from a 4-entry table
[10, 20, 30, 40]; an index outside 0..3 makes onnxruntime's Run fail ("indices element
out of data bounds"). Used by tests/faults.rs to check that a run error fails only the
poisoned request. Committed (a few hundred bytes); rerun to regenerate.
"""
import os

import onnx
from onnx import TensorProto, helper

here = os.path.dirname(os.path.abspath(__file__))
table = helper.make_tensor("table", TensorProto.FLOAT, [4], [10.0, 20.0, 30.0, 40.0])
graph = helper.make_graph(
    [helper.make_node("Gather", ["table", "index"], ["value"], axis=0)],
    "faulty",
    [helper.make_tensor_value_info("index", TensorProto.INT64, [None, 1])],
    [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])],
    initializer=[table],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "model.onnx"))
print("wrote", os.path.join(here, "model.onnx"))
