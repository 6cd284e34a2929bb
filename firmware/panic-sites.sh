#!/usr/bin/env bash
# Counts the panic sites left in the firmware: every branch (bl, b, b<cond>, cbz, cbnz) to one of
# core's panic entry points (core::panicking::*, slice_index_*_fail, copy_from_slice's
# len_mismatch_fail, unwrap/expect_failed,
# RefCell borrow panics), from any function that is not itself one of them. Prints one line per
# (target, caller) with its count, then the total. The `panic-never` feature proves the total is 0.
#
#   ./panic-sites.sh [ELF]     (default: the release build of the default features)
set -euo pipefail
elf=${1:-target/thumbv7em-none-eabihf/release/mnistc-firmware}
arm-none-eabi-objdump -d --no-show-raw-insn --demangle "$elf" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); next }
  match($0, /<core::(panicking|slice::index|slice::copy_from_slice_impl|option::(unwrap|expect)_failed|result::unwrap_failed|cell::panic)[^>]*>/) {
    if (fn ~ /^core::(panicking|slice::index|slice::copy_from_slice_impl|option::|result::|cell::panic)/) next
    if ($0 !~ /\t(bl|blx|b|b\.[nw]|b[a-z][a-z]|b[a-z][a-z]\.[nw]|cbz|cbnz)\t/) next
    t = substr($0, RSTART + 1, RLENGTH - 2); sub(/\+0x[0-9a-f]+$/, "", t)
    print t "\t" fn
  }' | sort | uniq -c | sort -rn | awk '{ print; total += $1 } END { print "total", total + 0 }'
