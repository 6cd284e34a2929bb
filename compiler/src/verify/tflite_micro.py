# TensorFlow Lite Micro's reference kernels for `mnistc check --tflite` (compiler/src/verify/tflite_micro.rs
# runs this with `python -c`; it is not meant to be run by hand).
#
#     python -c SCRIPT MODEL.tflite INPUT_BYTES T1,T2,...
#
# Loads MODEL.tflite in `tflite_micro.runtime.Interpreter` (PyPI `tflite-micro`), keeping every
# tensor (kPreserveAllTensors). Writes one JSON line to stdout describing the input and the tensors
# T1, T2, ... (dtype, element count), then reads int8 inputs of INPUT_BYTES bytes from stdin until
# it closes and, for each, invokes the model and writes the int8 values of T1, T2, ... (raw, in
# that order) to stdout. Errors go to stderr; exit 3 when tflite_micro cannot be imported.
import json
import sys

try:
    import numpy as np
    from tflite_micro import runtime
except ImportError as e:
    sys.stderr.write(f"cannot import tflite_micro: {e}\n")
    sys.exit(3)


def main():
    model_path, input_bytes, tensors = sys.argv[1], int(sys.argv[2]), [int(t) for t in sys.argv[3].split(",")]
    interp = runtime.Interpreter.from_file(
        model_path, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    detail = interp.get_input_details(0)
    shape = detail["shape"]
    header = {
        "input": {"dtype": np.dtype(detail["dtype"]).name, "size": int(np.prod(shape))},
        "tensors": [],
    }
    for t in tensors:
        d = interp.GetTensor(t, 0)
        header["tensors"].append({"index": t, "dtype": np.dtype(d["dtype"]).name, "size": int(np.prod(d["shape"]))})
    out = sys.stdout.buffer
    out.write((json.dumps(header) + "\n").encode())
    out.flush()
    if header["input"]["dtype"] != "int8" or header["input"]["size"] != input_bytes:
        return
    if any(t["dtype"] != "int8" for t in header["tensors"]):
        return
    source = sys.stdin.buffer
    while True:
        x = source.read(input_bytes)
        if not x:
            break
        if len(x) != input_bytes:
            sys.stderr.write(f"a truncated input: {len(x)} of {input_bytes} bytes\n")
            sys.exit(1)
        interp.set_input(np.frombuffer(x, dtype=np.int8).reshape(shape), 0)
        interp.invoke()
        for t in tensors:
            out.write(np.ascontiguousarray(interp.GetTensor(t, 0)["tensor_data"], dtype=np.int8).tobytes())
        out.flush()


main()
