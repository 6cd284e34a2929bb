#!/usr/bin/env bash
# A fresh clone of this repository with no ../shared beside it, MNISTC_DATA unset and a local
# mirror set runs the README's first set-up command to the end: the data set arrives by download
# (from a web server this script starts on 127.0.0.1, serving a data directory), is verified by
# SHA-256, and the build writes the blob. Nothing touches the internet.
#
# Usage: scripts/fresh-clone-download.sh [--bin PATH] [--data DIR] [-- EXTRA BUILD ARGUMENTS]
#   --bin PATH   run PATH instead of the README's `cargo run --release -p mnistc --` (CI passes the
#                binary it built, and `-- --epochs 1 --train-limit 2000 --quiet` to train briefly)
#   --data DIR   the data directory to serve as the mirror [default: ../shared/data]
# Without --bin, the README's command runs as written (a release build in the clone; set
# CARGO_TARGET_DIR to reuse a build) and trains the full 12 epochs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=""
data="$repo/../shared/data"
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$(realpath "$2"); shift 2 ;;
        --data) data=$(realpath "$2"); shift 2 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -d "$data/mnist" ] || { echo "no $data/mnist to serve as the mirror" >&2; exit 2; }

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

git clone -q "$repo" "$work/mnistc"
cd "$work/mnistc"
[ ! -e ../shared ] && [ ! -e data ] || { echo "the clone must have no data beside it" >&2; exit 1; }

# A web server on a free port of 127.0.0.1, serving the data directory's layout (mnist/FILE.gz).
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$data" >"$work/http.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "${port:-}" ] || { echo "the mirror did not start: $(cat "$work/http.log")" >&2; exit 1; }

# The README's first set-up command, as written there.
readme_command=$(grep -m1 '^cargo run --release -p mnistc -- build ' README.md)
echo "README: $readme_command"
read -r -a words <<<"$readme_command"
if [ -n "$bin" ]; then
    # `cargo run --release -p mnistc -- ARGS` is `mnistc ARGS`.
    words=("$bin" "${words[@]:6}")
fi
echo "running: ${words[*]} ${extra[*]:-} (mirror http://127.0.0.1:$port)"
env -u MNISTC_DATA MNISTC_CACHE="$work/cache" MNISTC_MIRROR="http://127.0.0.1:$port" \
    "${words[@]}" "${extra[@]}"

test -s digits.bin || { echo "no digits.bin" >&2; exit 1; }
ls "$work/cache/data/mnist"
env -u MNISTC_DATA MNISTC_CACHE="$work/cache" "${words[@]:0:${#words[@]}-4}" data list \
    | sed -n '/^mnist/,/^$/p'
grep -q 'GET /mnist/train-images-idx3-ubyte.gz' "$work/http.log" || { echo "nothing was downloaded" >&2; exit 1; }
echo "fresh clone: the README's first command ran to the end with the data downloaded from the mirror"
