"""onnxruntime called directly from Python on the example classifier, batch 1: the side-by-side
baseline for infer-http-bench with the ort backend.

    .venv/bin/python benches/ort_direct.py THREADS
"""
import time, numpy as np, onnxruntime as ort, sys
so = ort.SessionOptions(); so.intra_op_num_threads = int(sys.argv[1]); so.inter_op_num_threads = 1
s = ort.InferenceSession("examples/models/efficientnet_lite0/1/model.onnx", so, providers=["CPUExecutionProvider"])
x = ((np.arange(3*224*224) % 256).astype(np.float32) / 128 - 1).reshape(1, 3, 224, 224)
for _ in range(3): s.run(None, {"input": x})
t = time.perf_counter(); n = 0
while time.perf_counter() - t < 5: s.run(None, {"input": x}); n += 1
print(f"onnxruntime {ort.__version__} from Python, batch 1, {sys.argv[1]} intra-op threads: {n / (time.perf_counter() - t):.1f} inferences/s")
