#!/usr/bin/env bash
# Builds `mnistc` with `--features cuda` without the network access burn-cuda's build asks for.
#
# burn-cuda 0.22.1 compiles its kernels LLVM -> PTX, and its dependency `tracel-llvm-bundler`
# downloads an LLVM 23.1 bundle from GitHub in its build script. That script skips the download
# when `$XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4/` (default `~/.local/share/...`) holds an LLVM
# prefix and the marker file `.tracel-llvm-installed`. PyPI has such a prefix:
# `mlc-llvm-static` (the X86 target) plus `mlc-llvm-static-extra-targets` (NVPTX and the others),
# unzipped into one folder. At run time, burn-cuda also needs `libdevice.10.bc`, which the PyPI
# wheel `nvidia-cuda-nvcc-cu12` ships; it is found through `$CUDA_PATH/nvvm/libdevice/`.
#
# Everything is idempotent: wheels are downloaded once into the cache folder, unpacked once,
# and cargo rebuilds only what changed.
#
#   scripts/cuda-toolchain.sh                 # install the toolchain, then cargo build --release --features cuda
#   scripts/cuda-toolchain.sh --install-only  # only the LLVM prefix and libdevice
#   PROFILE=dev scripts/cuda-toolchain.sh     # a dev-profile build (dependencies still optimised)
#
# Environment: MNISTC_CUDA_TOOLCHAIN (cache folder, default $XDG_CACHE_HOME/mnistc/cuda-toolchain
# or ~/.cache/mnistc/cuda-toolchain), PROFILE (release or dev), CARGO_TARGET_DIR, CARGO_BUILD_JOBS.
# Prints, at the end, the binary and the `export CUDA_PATH=...` line the GPU machine needs.
set -euo pipefail

LLVM_WHEELS="mlc-llvm-static==23.1.1.post0 mlc-llvm-static-extra-targets==23.1.1.post0"
NVCC_WHEEL="nvidia-cuda-nvcc-cu12==12.9.86"
BUNDLE="tracel-llvm-23.1.0-4"

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${MNISTC_CUDA_TOOLCHAIN:-${XDG_CACHE_HOME:-$HOME/.cache}/mnistc/cuda-toolchain}"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
bundle_dir="$data_home/tracel/$BUNDLE"
profile="${PROFILE:-release}"
install_only=false
for arg in "$@"; do
    case "$arg" in
        --install-only) install_only=true ;;
        -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "cuda-toolchain.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '== %s\n' "$*"; }

# 1. The wheels (PyPI only), once.
mkdir -p "$cache/wheels"
for spec in $LLVM_WHEELS $NVCC_WHEEL; do
    name=${spec%%==*}
    version=${spec##*==}
    pattern="$cache/wheels/${name//-/_}-${version}-*.whl"
    # shellcheck disable=SC2086
    if ! ls $pattern >/dev/null 2>&1; then
        say "downloading $spec from PyPI"
        python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$cache/wheels" "$spec"
    fi
done

# 2. The LLVM prefix: both LLVM wheels unzipped into one folder.
llvm_root="$cache/llvm-23.1.1"
prefix="$llvm_root/mlc_llvm_static/static"
if [ ! -f "$llvm_root/.complete" ]; then
    say "unpacking LLVM into $llvm_root"
    rm -rf "$llvm_root.partial"
    mkdir -p "$llvm_root.partial"
    for w in "$cache"/wheels/mlc_llvm_static-*.whl "$cache"/wheels/mlc_llvm_static_extra_targets-*.whl; do
        python3 -m zipfile -e "$w" "$llvm_root.partial"
    done
    rm -rf "$llvm_root"
    mv "$llvm_root.partial" "$llvm_root"
    touch "$llvm_root/.complete"
fi
[ -f "$prefix/bin/llvm-config" ] || { echo "no bin/llvm-config under $prefix: the wheel layout changed" >&2; exit 1; }
# The wheel's llvm-config is a Python script; zip extraction drops its executable bit.
chmod +x "$prefix"/bin/*
"$prefix/bin/llvm-config" --version >/dev/null

# 3. Where tracel-llvm-bundler looks, with its marker: the download is skipped.
mkdir -p "$(dirname "$bundle_dir")"
if [ -L "$bundle_dir" ] || [ ! -e "$bundle_dir" ]; then
    ln -sfn "$prefix" "$bundle_dir"
else
    echo "$bundle_dir exists and is not this script's link; leaving it as it is" >&2
fi
touch "$bundle_dir/.tracel-llvm-installed"

# 4. libdevice for run time.
cuda_path="$cache/cuda-nvcc/nvidia/cuda_nvcc"
if [ ! -f "$cuda_path/nvvm/libdevice/libdevice.10.bc" ]; then
    say "unpacking libdevice"
    rm -rf "$cache/cuda-nvcc"
    python3 -m zipfile -e "$cache"/wheels/nvidia_cuda_nvcc_cu12-*.whl "$cache/cuda-nvcc"
fi
[ -f "$cuda_path/nvvm/libdevice/libdevice.10.bc" ] || { echo "no libdevice.10.bc in the nvcc wheel" >&2; exit 1; }
say "LLVM prefix: $prefix (linked from $bundle_dir)"
say "libdevice:   $cuda_path/nvvm/libdevice/libdevice.10.bc"
$install_only && { echo "export CUDA_PATH=$cuda_path"; exit 0; }

# 5. The build.
cd "$root"
case "$profile" in
    release) flags=(--release); out="${CARGO_TARGET_DIR:-target}/release/mnistc" ;;
    dev) flags=(); out="${CARGO_TARGET_DIR:-target}/debug/mnistc" ;;
    *) echo "PROFILE must be release or dev, not '$profile'" >&2; exit 2 ;;
esac
say "cargo build ${flags[*]} -p mnistc --features cuda"
start=$(date +%s)
LLVM_SYS_231_PREFIX="$prefix" cargo build "${flags[@]}" -p mnistc --bin mnistc --features cuda
say "built $out in $(( $(date +%s) - start )) s: $(du -h "$out" | cut -f1)"
echo "On the GPU machine: export CUDA_PATH=$cuda_path (or a CUDA toolkit's), then $out train ... --device cuda"
