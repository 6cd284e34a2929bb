#!/usr/bin/env python3
"""Golden outputs of TensorFlow Lite Micro's reference kernels for `mnistc import` parity tests.

Runs a full-integer `.tflite` model in `tflite_micro.runtime.Interpreter` (PyPI `tflite-micro`,
TFLite Micro's reference kernels) and writes, for every input, the int8 tensor that feeds the
model's final SOFTMAX (the logits mnistc keeps), or the model output when there is no SOFTMAX.

Inputs are either the MNIST test images (`--mnist DIR`: `t10k-images-idx3-ubyte.gz`, int8 input
`pixel - 128`) or `--random N`: N int8 tensors drawn from the same SplitMix64 stream as
`random_inputs` in tests/import_tflite.rs (seed 0x6d6e697374632121, one byte per draw, low byte),
so Rust regenerates the inputs instead of committing them.

Output: gzip of the raw int8 logits, N x classes, row-major (`-o FILE.gz`). It also prints the
arena TFLite Micro's RecordingMicroAllocator reports for the model.

    python3 -m venv /tmp/tflm && /tmp/tflm/bin/pip install tflite-micro tflite numpy
    /tmp/tflm/bin/python scripts/tflm-golden.py ../shared/models/cnn_mnist_int8.tflite \
        --mnist ../shared/data/mnist -o tests/golden/cnn_mnist_int8.tflm.gz
    /tmp/tflm/bin/python scripts/tflm-golden.py ../shared/models/kws_ref_model.tflite \
        --random 1000 -o tests/golden/kws_ref_model.tflm.gz
"""

import argparse
import gzip
import os
import sys

import numpy as np
import tflite
from tflite_micro import runtime

SEED = 0x6D6E697374632121
MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def random_inputs(n, size):
    state = SEED
    out = np.empty((n, size), dtype=np.int8)
    for i in range(n):
        for j in range(size):
            state, z = splitmix64(state)
            out[i, j] = np.int8(np.uint8(z & 0xFF).view(np.int8))
    return out


def mnist_inputs(directory):
    with gzip.open(os.path.join(directory, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        data = f.read()
    n = int.from_bytes(data[4:8], "big")
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 28 * 28)
    return (pixels.astype(np.int16) - 128).astype(np.int8)


def logits_tensor(model_bytes):
    """Index of the tensor that feeds the last SOFTMAX, else the subgraph's first output."""
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    for i in range(graph.OperatorsLength() - 1, -1, -1):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == tflite.BuiltinOperator.SOFTMAX:
            return op.Inputs(0)
    return graph.Outputs(0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--mnist")
    p.add_argument("--random", type=int)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    model_bytes = open(args.model, "rb").read()
    interp = runtime.Interpreter.from_bytes(
        model_bytes, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    detail = interp.get_input_details(0)
    shape, dtype = detail["shape"], detail["dtype"]
    if dtype != np.int8:
        sys.exit(f"{args.model}: input is {dtype}, not int8")
    size = int(np.prod(shape))
    if args.mnist:
        inputs = mnist_inputs(args.mnist)
    elif args.random:
        inputs = random_inputs(args.random, size)
    else:
        sys.exit("give --mnist DIR or --random N")
    tensor = logits_tensor(model_bytes)
    rows = []
    for x in inputs:
        interp.set_input(x.reshape(shape), 0)
        interp.invoke()
        rows.append(np.array(interp.GetTensor(tensor, 0)["tensor_data"], dtype=np.int8).reshape(-1))
    golden = np.stack(rows)
    tmp = args.output + ".tmp"
    with gzip.GzipFile(tmp, "wb", mtime=0) as f:
        f.write(golden.tobytes())
    os.replace(tmp, args.output)
    print(f"{args.output}: {golden.shape[0]} x {golden.shape[1]} int8 logits (tensor {tensor})")
    recording = runtime.Interpreter.from_bytes(model_bytes)
    recording.set_input(inputs[0].reshape(shape), 0)
    recording.invoke()
    recording.print_allocations()


if __name__ == "__main__":
    main()
