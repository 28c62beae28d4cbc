"""Triton's own Python client (tritonclient[http]) against a running `weir serve`.

    python triton_client.py 127.0.0.1:PORT IMAGES_DIR GOLDEN_JSON

Run by pipeline/tests/triton_client.rs, which starts the server on the example model repository.
Every check raises on failure; the last line printed is "ok" when all passed.
"""

import json
import pathlib
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, images, golden_path = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
golden = json.loads(golden_path.read_text())
c = httpclient.InferenceServerClient(url=url)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def refused(call, status, words):
    try:
        call()
    except InferenceServerException as e:
        check(e.status() == str(status) and words in e.message(),
              f"refused with {status} mentioning {words!r} ({e.status()} {e.message()})")
        return
    raise AssertionError(f"expected a {status} refusal mentioning {words!r}")


# Health, metadata, config.
check(c.is_server_live(), "server live")
# The repository holds the fixtures' broken models too: reported with reasons, and the server is
# not ready until they are unloaded (Triton's strict readiness).
index = {(m["name"], m.get("version")): m for m in c.get_model_repository_index()}
broken = sorted({m["name"] for m in index.values() if m["state"] == "UNAVAILABLE"})
check(broken == ["garbage_random", "truncated_model", "zero_bytes"], f"broken models listed: {broken}")
check(all(m.get("reason") for m in index.values() if m["state"] == "UNAVAILABLE"), "each with a reason")
check(not c.is_server_ready(), "not ready while models are broken")
refused(lambda: c.get_model_metadata("zero_bytes"), 503, "0 bytes")
for name in broken:
    c.unload_model(name)
check(c.is_server_ready(), "ready once the broken ones are unloaded")
check(c.is_model_ready("simple"), "simple ready")
check(not c.is_model_ready("no_such_model"), "unknown model not ready")
check("binary_tensor_data" in c.get_server_metadata()["extensions"], "server metadata")
meta = c.get_model_metadata("efficientnet_lite0")
check(meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}, "model metadata")
cfg = c.get_model_config("efficientnet_lite0")
check(cfg["max_batch_size"] == 32 and cfg["input"][0]["dims"] == [3, 224, 224], "model config")

# Triton's quick-start: the `simple` model, binary tensors (the client's default) and JSON ones.
a = np.arange(16, dtype=np.int32).reshape(1, 16)
b = np.ones((1, 16), dtype=np.int32)
for binary in (True, False):
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(a, binary_data=binary)
    inputs[1].set_data_from_numpy(b, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=not binary)]
    r = c.infer("simple", inputs, outputs=outputs, request_id="q1")
    check((r.as_numpy("OUTPUT0") == a + b).all() and (r.as_numpy("OUTPUT1") == a - b).all(),
          f"simple infer, binary inputs={binary}")
    check(r.get_response()["id"] == "q1", "request id echoed")
# Compressed requests and answers, as the client makes them.
for algorithm in ("gzip", "deflate"):
    r = c.infer("simple", inputs, request_compression_algorithm=algorithm,
                response_compression_algorithm=algorithm)
    check((r.as_numpy("OUTPUT0") == a + b).all(), f"simple infer compressed with {algorithm}")
# No outputs named: the client asks for all of them as binary.
r = c.infer("simple", inputs)
check((r.as_numpy("OUTPUT0") == a + b).all() and r.as_numpy("OUTPUT1") is not None, "all outputs by default")

# The classifier: the synthetic batch's logits equal onnxruntime's within 1e-3.
x = (np.arange(3 * 224 * 224, dtype=np.int64) % 256).astype(np.float32) / 128.0 - 1.0
batch = np.stack([x.reshape(3, 224, 224), np.zeros((3, 224, 224), np.float32)])
inp = httpclient.InferInput("input", list(batch.shape), "FP32")
inp.set_data_from_numpy(batch)
logits = c.infer("efficientnet_lite0", [inp]).as_numpy("logits")
want = np.array(golden["synthetic"]["pattern_logits"], dtype=np.float64)
check(logits.shape == (2, 1000) and np.abs(logits[0] - want).max() < 1e-3,
      f"synthetic logits within 1e-3 (max diff {np.abs(logits[0] - want).max():.2e})")
want0 = np.array(golden["synthetic"]["zeros_logits_first10"])
check(np.abs(logits[1][:10] - want0).max() < 1e-3, "zeros row logits within 1e-3")

# Golden top-1 on the photos the model is sure about, preprocessed here as the golden file says
# (Pillow), sent as tensors.
try:
    from PIL import Image, ImageOps
except ImportError:
    Image = None
if Image is not None:
    for photo, label in [("coffee_600x400.png", "espresso"), ("mountains_1920x1440.jpg", "alp")]:
        im = ImageOps.exif_transpose(Image.open(images / photo)).convert("RGB")
        w, h = im.size
        s = 256 / min(w, h)
        im = im.resize((round(w * s), round(h * s)) if w != h else (256, 256), Image.BILINEAR)
        w, h = im.size
        im = im.crop(((w - 224) // 2, (h - 224) // 2, (w - 224) // 2 + 224, (h - 224) // 2 + 224))
        t = ((np.asarray(im, np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        inp = httpclient.InferInput("input", list(t.shape), "FP32")
        inp.set_data_from_numpy(t)
        top = int(c.infer("efficientnet_lite0", [inp]).as_numpy("logits")[0].argmax())
        labels = (pathlib.Path(golden_path).parent.parent.parent / "examples/models/efficientnet_lite0/labels.txt").read_text().split("\n")
        check(labels[top] == label, f"{photo} -> {labels[top]}")

# Bad input: unknown model, wrong shape, wrong datatype.
refused(lambda: c.get_model_metadata("no_such_model"), 404, "unknown model")
bad = httpclient.InferInput("INPUT0", [1, 15], "INT32")
bad.set_data_from_numpy(np.zeros((1, 15), np.int32))
ok1 = httpclient.InferInput("INPUT1", [1, 16], "INT32")
ok1.set_data_from_numpy(b)
refused(lambda: c.infer("simple", [bad, ok1]), 400, "INPUT0")
wrong = httpclient.InferInput("INPUT0", [1, 16], "FP32")
wrong.set_data_from_numpy(np.zeros((1, 16), np.float32))
refused(lambda: c.infer("simple", [wrong, ok1]), 400, "expects INT32")
refused(lambda: c.infer("no_such_model", [ok1]), 404, "unknown model")

# The repository API.
check(index[("simple", "1")]["state"] == "READY", "repository index")
c.unload_model("simple")
check(not c.is_model_ready("simple"), "unloaded")
refused(lambda: c.infer("simple", [ok1]), 503, "not ready")
c.load_model("simple")
check(c.is_model_ready("simple"), "loaded again")
stats = c.get_inference_statistics("efficientnet_lite0")["model_stats"][0]
check(stats["inference_count"] >= 2 and stats["inference_stats"]["success"]["count"] >= 1, "statistics")
print("ok")
