"""Make the small ONNX models the tests and benchmarks use (committed under examples/models/).

    python tools/make_test_models.py        # needs `pip install onnx`

- simple: Triton's own example model, as its quick-start serves it: INPUT0, INPUT1 (INT32, [N, 16])
  -> OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1.
- identity_fp32: INPUT0 (FP32, [N, any]) -> OUTPUT0, unchanged: the server's own overhead per request.
- fixtures/unfolding/unfolding_64mib: a file of a few hundred bytes whose weights unfold to 64 MiB
  when an engine loads it (ConstantOfShape into a MatMul): what the memory accounting must see.
"""

import pathlib

import onnx
from onnx import TensorProto, helper

ROOT = pathlib.Path(__file__).resolve().parent.parent / "examples" / "models"


def save(name: str, graph, config: str, root: pathlib.Path = ROOT) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="weir")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    folder = root / name / "1"
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    (root / name / "config.yaml").write_text(config)


def simple() -> None:
    t = lambda n: helper.make_tensor_value_info(n, TensorProto.INT32, ["N", 16])
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        "simple", [t("INPUT0"), t("INPUT1")], [t("OUTPUT0"), t("OUTPUT1")])
    save("simple", graph, "# Triton's quick-start model: sums and differences of two INT32 vectors.\n"
         "max_batch_size: 8\n")


def identity() -> None:
    t = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", "D"])
    graph = helper.make_graph([helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
                              "identity_fp32", [t("INPUT0")], [t("OUTPUT0")])
    save("identity_fp32", graph, "# Returns its input: what a request costs the server itself.\n"
         "max_batch_size: 64\n")


def unfolding() -> None:
    # W = 2048 x 8192 FP32 of 1/2048 (64 MiB), made at load from a 2-element shape; Y = X @ W, so
    # every engine must keep W (folded or packed) for as long as the model is loaded.
    shape = helper.make_tensor("w_shape", TensorProto.INT64, [2], [2048, 8192])
    value = helper.make_tensor("value", TensorProto.FLOAT, [1], [1.0 / 2048])
    graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["w_shape"], ["W"], value=value),
         helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "unfolding_64mib",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2048])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 8192])],
        initializer=[shape])
    save("unfolding_64mib", graph,
         "# A few hundred bytes on disk, 64 MiB of weights once loaded (tools/make_test_models.py).\n"
         "max_batch_size: 4\nwarmup: true\n", ROOT.parent.parent / "fixtures" / "unfolding")


if __name__ == "__main__":
    simple()
    identity()
    unfolding()
