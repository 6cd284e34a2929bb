#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/seeds/<target>/ (run from anywhere; deterministic).

blob:   the golden blobs (runtime/tests/golden/*.bin), truncations at each section boundary,
        and variants whose last byte picks each input kind (the target fixes their CRC).
idx:    small IDX files cut from the MNIST test set (header + a few images/labels, count fixed),
        and variants (wrong count, zero sizes, huge sizes, truncated header, wrong magic).
cifar:  one and two records cut from the CIFAR-10 test batch, a bad label, a partial record, and
        class-name files (the real one and a short one).
png:    small PNGs of several colour types and bit depths, behind the target's 3-byte
        (width - 1, height - 1, channels: 1 grey / 0 colour) prefix.
model_toml, search_space: the shipped models/*.toml.
"""
import gzip
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")


def out(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fix_crc(b):
    b = bytearray(b)
    b[8:12] = struct.pack("<I", len(b))
    b[12:16] = struct.pack("<I", zlib.crc32(bytes(b[16:])) & 0xFFFFFFFF)
    return bytes(b)


def blob_seeds():
    golden = os.path.join(ROOT, "runtime", "tests", "golden")
    for p in ("int8", "f16", "f32"):
        b = open(os.path.join(golden, f"tiny-{p}.bin"), "rb").read()
        out("blob", f"tiny-{p}", b)
        meta_off, plan_off, weights_off = struct.unpack_from("<I", b, 16)[0], struct.unpack_from("<I", b, 24)[0], \
            struct.unpack_from("<I", b, 32)[0]
        for cut in (64, meta_off, plan_off, weights_off, len(b) // 2, len(b) - 1):
            out("blob", f"tiny-{p}-cut{cut}", b[:cut])
        for kind in range(4):
            v = bytearray(b)
            v[-1] = (v[-1] & ~3) | kind
            out("blob", f"tiny-{p}-input{kind}", fix_crc(v))
    extra = "/tmp/seeds"
    if os.path.isdir(extra):
        for name in sorted(os.listdir(extra)):
            path = os.path.join(extra, name)
            if os.path.isfile(path) and os.path.getsize(path) <= 200_000:
                out("blob", "shipped-" + os.path.splitext(name)[0], open(path, "rb").read())


def idx_seeds():
    mnist = os.path.join(ROOT, "..", "shared", "data", "mnist")
    if not os.path.isdir(mnist):
        mnist = "/work/shared/data/mnist"
    images = gzip.open(os.path.join(mnist, "t10k-images-idx3-ubyte.gz")).read()
    labels = gzip.open(os.path.join(mnist, "t10k-labels-idx1-ubyte.gz")).read()
    for n in (0, 1, 3):
        out("idx", f"images-{n}", struct.pack(">IIII", 0x803, n, 28, 28) + images[16:16 + n * 784])
        out("idx", f"labels-{n}", struct.pack(">II", 0x801, n) + labels[8:8 + n])
    out("idx", "images-count-too-big", struct.pack(">IIII", 0x803, 10000, 28, 28) + images[16:16 + 784])
    out("idx", "images-huge", struct.pack(">IIII", 0x803, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) + bytes(64))
    out("idx", "images-zero-rows", struct.pack(">IIII", 0x803, 5, 0, 28))
    out("idx", "images-small", struct.pack(">IIII", 0x803, 2, 2, 3) + bytes(range(12)))
    out("idx", "labels-huge", struct.pack(">II", 0x801, 0xFFFFFFFF) + bytes(8))
    out("idx", "header-cut", struct.pack(">III", 0x803, 1, 28))
    out("idx", "magic-only", struct.pack(">I", 0x803))
    out("idx", "wrong-type", struct.pack(">IIII", 0x903, 1, 1, 1) + b"\x00")
    out("idx", "gzip-magic", b"\x1f\x8b" + images[2:40])


def cifar_seeds():
    cifar = os.path.join(os.environ.get("MNISTC_DATA", os.path.join(ROOT, "..", "shared", "data")), "cifar-10")
    batch = gzip.open(os.path.join(cifar, "test_batch.bin.gz")).read()
    record = 3073
    out("cifar", "one-record", batch[:record])
    out("cifar", "two-records", batch[:2 * record])
    out("cifar", "bad-label", bytes([10]) + batch[1:record])
    out("cifar", "partial-record", batch[:1000])
    out("cifar", "meta", open(os.path.join(cifar, "batches.meta.txt"), "rb").read())
    out("cifar", "meta-short", b"airplane\nautomobile\n")


def png(width, height, color_type, bit_depth, rows, interlace=0, extra=b""):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_seeds():
    def prefixed(w, h, data, colour=False):
        return bytes([w - 1, h - 1, 0 if colour else 1]) + data

    grey = [bytes((x * 9 + y * 3) % 256 for x in range(28)) for y in range(28)]
    out("png", "grey8-28", prefixed(28, 28, png(28, 28, 0, 8, grey)))
    out("png", "grey8-28-as-14", prefixed(14, 14, png(28, 28, 0, 8, grey)))
    rgb = [bytes(v for x in range(8) for v in (x * 30, y * 30, 128)) for y in range(8)]
    out("png", "rgb8-8", prefixed(8, 8, png(8, 8, 2, 8, rgb)))
    out("png", "rgb8-8-colour-as-32", prefixed(32, 32, png(8, 8, 2, 8, rgb), colour=True))
    rgba = [bytes(v for x in range(4) for v in (x * 60, y * 60, 7, 200)) for y in range(4)]
    out("png", "rgba8-4", prefixed(4, 4, png(4, 4, 6, 8, rgba)))
    out("png", "rgba8-4-colour", prefixed(4, 4, png(4, 4, 6, 8, rgba), colour=True))
    grey16 = [b"".join(struct.pack(">H", (x * y * 997) % 65536) for x in range(5)) for y in range(5)]
    out("png", "grey16-5", prefixed(5, 5, png(5, 5, 0, 16, grey16)))
    grey1 = [bytes([0b10110010]) for _ in range(8)]
    out("png", "grey1-8", prefixed(8, 8, png(8, 8, 0, 1, grey1)))
    plte = struct.pack(">I", 6) + b"PLTE" + b"\x00\x00\x00\xff\xff\xff"
    plte += struct.pack(">I", zlib.crc32(b"PLTE\x00\x00\x00\xff\xff\xff") & 0xFFFFFFFF)
    out("png", "palette-4", prefixed(4, 4, png(4, 4, 3, 8, [bytes([0, 1, 0, 1])] * 4, extra=plte)))
    ga = [bytes(v for x in range(3) for v in (x * 80, 255)) for y in range(3)]
    out("png", "grey-alpha-3", prefixed(3, 3, png(3, 3, 4, 8, ga)))
    out("png", "interlaced-grey-6", prefixed(6, 6, png(6, 6, 0, 8, [bytes(range(6))] * 6, interlace=1)))
    out("png", "truncated", prefixed(28, 28, png(28, 28, 0, 8, grey)[:60]))


def toml_seeds():
    models = os.path.join(ROOT, "models")
    for name in sorted(os.listdir(models)):
        if not name.endswith(".toml"):
            continue
        text = open(os.path.join(models, name), "rb").read()
        target = "search_space" if name.startswith("search") else "model_toml"
        out(target, name.removesuffix(".toml"), text)
    # Each target also gets the other kind: the parsers must reject them cleanly.
    for name in ("digits", "mlp"):
        out("search_space", "model-" + name, open(os.path.join(models, name + ".toml"), "rb").read())
    out("model_toml", "search", open(os.path.join(models, "search.toml"), "rb").read())


if __name__ == "__main__":
    shutil.rmtree(SEEDS, ignore_errors=True)
    blob_seeds()
    idx_seeds()
    cifar_seeds()
    png_seeds()
    toml_seeds()
