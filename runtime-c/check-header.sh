#!/usr/bin/env bash
# Regenerates the C header from src/lib.rs and fails if the committed include/mnistc.h differs
# (`./check-header.sh --write` updates it). Needs cbindgen: `cargo install cbindgen --locked`.
set -euo pipefail
cd "$(dirname "$0")"
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
cbindgen --quiet --config cbindgen.toml --output "$fresh" .
if [ "${1:-}" = "--write" ]; then
    cp "$fresh" include/mnistc.h
elif ! diff -u include/mnistc.h "$fresh"; then
    echo "include/mnistc.h is out of date: run runtime-c/check-header.sh --write" >&2
    exit 1
fi
