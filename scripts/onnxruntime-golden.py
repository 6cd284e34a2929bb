#!/usr/bin/env python3
"""Top-1 classes of onnxruntime on the MNIST test set, for `mnistc import` agreement tests.

Runs an `.onnx` MNIST model (float input `pixel / 255`, NHWC [N, 28, 28, 1], as tf2onnx and
onnxruntime's quantizer write the models in ../shared/models) with onnxruntime's CPU provider
and writes each test image's top-1 class (the first maximum) as one byte, gzip-compressed.

    python3 -m venv /tmp/ort && /tmp/ort/bin/pip install onnxruntime numpy
    /tmp/ort/bin/python scripts/onnxruntime-golden.py ../shared/models/cnn_mnist_int8.onnx \
        --mnist ../shared/data/mnist -o tests/golden/cnn_mnist_int8.ort.gz
"""

import argparse
import gzip
import os

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--mnist", required=True)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    with gzip.open(os.path.join(args.mnist, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        data = f.read()
    n = int.from_bytes(data[4:8], "big")
    x = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 28, 28, 1).astype(np.float32) / 255.0
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    classes = np.concatenate([session.run(None, {name: x[i : i + 500]})[0].argmax(1) for i in range(0, n, 500)])
    tmp = args.output + ".tmp"
    with gzip.GzipFile(tmp, "wb", mtime=0) as f:
        f.write(classes.astype(np.uint8).tobytes())
    os.replace(tmp, args.output)
    labels = np.frombuffer(gzip.open(os.path.join(args.mnist, "t10k-labels-idx1-ubyte.gz")).read(), np.uint8, offset=8)
    print(f"{args.output}: {n} classes, accuracy {(classes == labels).mean():.4f}")


if __name__ == "__main__":
    main()
