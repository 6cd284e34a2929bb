#!/usr/bin/env python3
"""Times a .tflite with LiteRT (the TensorFlow Lite interpreter from PyPI `ai-edge-litert`):
with its default XNNPACK delegate and without any delegate (the built-in reference/optimized
kernels); batch 1, one thread, the median of RUNS `invoke()` calls after 200 warm-up calls, on a
fixed random input. The side-by-side counterpart of `runtime/examples/op_times.rs` (README,
"Speed"):

    python3 -m venv /tmp/litert && /tmp/litert/bin/pip install ai-edge-litert numpy
    /tmp/litert/bin/python scripts/litert-bench.py ../shared/models/cnn_mnist_int8.tflite [RUNS]

Prints `xnnpack_us=… builtin_us=…`. The time includes Python's call into `invoke()` (well under
a microsecond), not setting the input.
"""
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def median_us(path, resolver, runs):
    it = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.random.default_rng(0).integers(-128, 127, size=inp["shape"]).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    for _ in range(200):
        it.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        it.invoke()
        times.append(time.perf_counter_ns() - t)
    return float(np.median(times)) / 1000


def main():
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    xnn = median_us(path, OpResolverType.AUTO, runs)
    builtin = median_us(path, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, runs)
    print(f"xnnpack_us={xnn:.2f} builtin_us={builtin:.2f}")


if __name__ == "__main__":
    main()
