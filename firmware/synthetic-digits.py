#!/usr/bin/env python3
# A synthetic int8 blob with the digits architecture (models/digits.toml as the compiler lowers it:
# conv 3x3x32 + fused max pool 2, conv 3x3x64 + fused max pool 2, dense 10; per-channel
# requantization; the same blob size, 36,600 B, and arena, 8,420 B, as digits.bin) and random weights.
# Blob format version 2. For instruction, stack and size figures without building the compiler: its accuracy is
# meaningless, its arm-dsp instruction count is that of digits.bin.
#   python3 synthetic-digits.py /tmp/digits-synthetic.bin
#   MNISTC_BLOB=/tmp/digits-synthetic.bin cargo run --release
import random, struct, sys, zlib
random.seed(42)
def f32bits(x): return struct.unpack('<I', struct.pack('<f', x))[0]
def align(n, a=16): return (n + a - 1) // a * a
weights = bytearray()
def put(data, a=16):
    global weights
    weights += b'\0' * (align(len(weights), a) - len(weights))
    off = len(weights); weights += data; return off
def packed(k, out):
    taps = (k + 3) // 4 * 4
    w = bytearray(taps * out)
    for oc in range(out):
        for t in range(k):
            w[((t // 4) * out + oc) * 4 + t % 4] = random.randint(-127, 127) & 0xFF
    return bytes(w)
def i32s(v): return struct.pack('<%di' % len(v), *v)
def u32s(v): return struct.pack('<%dI' % len(v), *v)
ops = []
def op(kind, act, pool, requant, ins, outs, kernel, poolw, k, out, m, izp, czp, ozp, amin, amax, io, oo, so, sl):
    w = put(packed(k, out))
    wlen = (k + 3) // 4 * 4 * out
    b = put(i32s([random.randint(-2000, 2000) for _ in range(out)]))
    q = put(u32s([f32bits(m * random.uniform(0.8, 1.2)) for _ in range(out)]))
    rec = struct.pack('<BBBBI', kind, act, pool, requant, 0)
    rec += struct.pack('<18H', *ins, *outs, kernel, kernel, 1 if kernel else 0, 1 if kernel else 0, 0, 0, 0, 0, poolw, poolw, poolw, poolw)
    rec += struct.pack('<6I', w, wlen, b, out * 4, q, out * 4)
    rec += struct.pack('<9i', izp, czp, ozp, 0, 0, amin, amax, 0, 0)
    rec += struct.pack('<4I', io, oo, so, sl)
    rec += struct.pack('<ff', 1 / 255, 0.05) + b'\0' * 32
    assert len(rec) == 160
    ops.append(rec)
def scratch(k, out, window): return 4 + 4 * out + max(4, (window + 3) // 4 * 4) * align(k)
s0 = scratch(9, 32, 4); s1 = scratch(288, 64, 4); s2 = 4 + 40 + align(1600)
op(1, 1, 1, 2, (28, 28, 1), (13, 13, 32), 3, 2, 9, 32, 0.002, -128, -128, -128, -128, 127, 5408, 0, 6192, s0)
op(1, 1, 1, 2, (13, 13, 32), (5, 5, 64), 3, 2, 288, 64, 0.0004, -128, -128, -128, -128, 127, 0, 5408, 7008, s1)
op(4, 0, 0, 2, (5, 5, 64), (1, 1, 10), 0, 0, 1600, 10, 0.0003, -128, 0, 0, -128, 127, 5408, 0, 10, s2)
arena = 8420
meta = bytearray(384)
meta[0:6] = b'digits'; meta[32:37] = b'mnist'
struct.pack_into('<BB2xHHH2xfifi', meta, 48, 2, 10, 28, 28, 1, 1 / 255, -128, 0.05, 0)
for i in range(10): meta[108 + 16 * i] = ord('0') + i
meta_off, plan_off = 64, 64 + 384
weights_off = align(plan_off + 160 * len(ops))
total = weights_off + len(weights)
blob = bytearray(total)
blob[meta_off:meta_off + 384] = meta
blob[plan_off:plan_off + 160 * len(ops)] = b''.join(ops)
blob[weights_off:] = weights
struct.pack_into('<4sHHIIIIIHHIIII16x', blob, 0, b'MNCB', 2, 64, total, 0, meta_off, 384, plan_off, len(ops), 160, weights_off, len(weights), arena, 0)
struct.pack_into('<I', blob, 12, zlib.crc32(bytes(blob[16:])) & 0xFFFFFFFF)
open(sys.argv[1] if len(sys.argv) > 1 else 'digits-synthetic.bin', 'wb').write(blob)
print(total)
