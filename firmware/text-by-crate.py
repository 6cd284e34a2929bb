#!/usr/bin/env python3
"""Splits the firmware's `.text` by crate, and the runtime's share by source file.

With LTO, symbol sizes (`nm -S`) credit inlined runtime code to `main` and to the interpreter.
Instead every instruction is counted against the innermost frame of its inline chain
(`arm-none-eabi-addr2line -i`) that is not in `core`, `alloc` or compiler-builtins, so a `core`
iterator inlined into a kernel counts as the kernel's.

    ./text-by-crate.py [ELF]     (default: the release build of the default features)
"""
import collections
import re
import subprocess
import sys

elf = sys.argv[1] if len(sys.argv) > 1 else "target/thumbv7em-none-eabihf/release/mnistc-firmware"

# Instruction (and literal-pool word) addresses of .text, in order, with the section's end.
dump = subprocess.run(
    ["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", "-j", ".text", elf],
    check=True, capture_output=True, text=True,
).stdout
addrs = [int(m.group(1), 16) for m in re.finditer(r"^\s+([0-9a-f]+):", dump, re.M)]
hdr = subprocess.run(["arm-none-eabi-objdump", "-h", elf], check=True, capture_output=True, text=True).stdout
m = re.search(r"\.text\s+([0-9a-f]+)\s+([0-9a-f]+)", hdr)
size, start = int(m.group(1), 16), int(m.group(2), 16)
addrs = sorted(set(a for a in addrs if start <= a < start + size))
sizes = [b - a for a, b in zip(addrs, addrs[1:] + [start + size])]

# One query for every address: for each, its inline chain (function, file:line pairs), ended by
# the sentinel address that `-a` echoes.
query = "\n".join(hex(a) for a in addrs) + "\n"
out = subprocess.run(
    ["arm-none-eabi-addr2line", "-a", "-i", "-f", "-C", "-e", elf],
    input=query, check=True, capture_output=True, text=True,
).stdout.splitlines()

chains = []
cur = None
i = 0
while i < len(out):
    line = out[i]
    if line.startswith("0x"):
        cur = []
        chains.append(cur)
        i += 1
        continue
    func, loc = line, out[i + 1] if i + 1 < len(out) else "??:0"
    cur.append((func, loc.split(":")[0]))
    i += 2


def outside(path):
    return (
        path.startswith("/rustc/")
        or "/library/core/" in path
        or "/library/alloc/" in path
        or "compiler_builtins" in path
        or "compiler-builtins" in path
        or path in ("??", "")
    )


def crate_of(path):
    if "/runtime/src/" in path:
        return "mnistc-runtime"
    if "/firmware/src/" in path or path.endswith("build.rs"):
        return "firmware"
    m = re.search(r"/registry/src/[^/]+/([^/]+?)-\d[^/]*/", path)
    if m:
        return m.group(1)
    return "core / compiler-builtins"


by_crate = collections.Counter()
by_file = collections.Counter()
for chain, n in zip(chains, sizes):
    # addr2line lists the innermost frame first.
    frame = next((f for f in chain if not outside(f[1])), chain[-1] if chain else ("??", "??"))
    crate = crate_of(frame[1])
    by_crate[crate] += n
    if crate == "mnistc-runtime":
        by_file[frame[1].split("/runtime/src/")[1]] += n

print(f".text {size} B")
for crate, n in by_crate.most_common():
    print(f"{n:8} {crate}")
print("mnistc-runtime by file:")
for f, n in by_file.most_common():
    print(f"{n:8}   {f}")
