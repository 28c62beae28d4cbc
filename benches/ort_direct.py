"""onnxruntime called directly from Python on the example classifier: the side-by-side baseline
for infer-http-bench with the ort backend.

    .venv/bin/python benches/ort_direct.py THREADS [BATCH [SECONDS]]

BATCH (default 1) images per run; the rate is images per second either way, so batch 8 against
batch 1 is what batching can gain on this machine at most.
"""
import time, numpy as np, onnxruntime as ort, sys
threads = int(sys.argv[1])
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
s = ort.InferenceSession("examples/models/efficientnet_lite0/1/model.onnx", so, providers=["CPUExecutionProvider"])
x = ((np.arange(batch*3*224*224) % 256).astype(np.float32) / 128 - 1).reshape(batch, 3, 224, 224)
for _ in range(3): s.run(None, {"input": x})
t = time.perf_counter(); n = 0
while time.perf_counter() - t < seconds: s.run(None, {"input": x}); n += batch
print(f"onnxruntime {ort.__version__} from Python, batch {batch}, {threads} intra-op threads: {n / (time.perf_counter() - t):.1f} inferences/s")
