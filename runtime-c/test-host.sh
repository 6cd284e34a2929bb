#!/usr/bin/env bash
# The C API from C on the host: builds the static library, compiles tests/host_test.c with
# -Wall -Wextra -Werror -std=c11 -pedantic against include/mnistc.h, and runs it on the
# runtime's golden blobs.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
out=target/host-test
mkdir -p "$out"
${CC:-cc} -Wall -Wextra -Werror -std=c11 -pedantic -O1 -Iinclude tests/host_test.c \
    target/release/libmnistc_runtime_c.a -o "$out/host_test"
"$out/host_test" ../runtime/tests/golden
