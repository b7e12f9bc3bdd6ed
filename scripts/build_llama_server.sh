#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` once per machine, from the llama-cpp-python sdist that
# requirements.lock pins (hash-checked), so the server engine and the in-process binding run
# the same llama.cpp source.
#
# Why a separate binary: llama-server reports its own timings (a local model gets a time to
# first token) and parses every tool-call format its chat parsers know, and
# with its own defaults it ran SmolLM2 2.3x llmbench's in-process path on an idle 2-core
# machine (issue 19; with llmbench's order-independent settings the gain is smaller:
# benchmarks/local_engine.py).
# The binary is cached outside the repo (like install.sh's wheel), keyed by the pinned version,
# so fresh clones and CI reuse it. LLMBENCH_LLAMA_SERVER_DIR moves the cache.
# Flags: no -march=native (it dies with SIGILL on VMs that advertise instructions they do not
# allow), no curl/openssl (models are local files), static libraries so the one file is the
# whole install. Only the `llama-server` target is built (about 10 minutes on 2 cores).
set -euo pipefail

PYTHON=${PYTHON:-python3}
LOCK=${LLMBENCH_LOCK:-requirements.lock}
CACHE=${LLMBENCH_LLAMA_SERVER_DIR:-$HOME/.cache/llmbench/llama-server}

# shellcheck source=scripts/lock_llama.sh
source "$(dirname "$0")/lock_llama.sh"
VERSION=$(lock_llama_version "$LOCK")
DEST="$CACHE/$VERSION/bin/llama-server"
if [ -x "$DEST" ]; then
  echo "llmbench: llama-server $VERSION is already built: $DEST"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lock_llama_split "$LOCK" llama >"$work/llama.txt"

echo "llmbench: building llama-server $VERSION from the pinned sdist, once for this machine."
echo "llmbench: this takes about 10 minutes on 2 cores; the binary is kept in $CACHE/$VERSION."
"$PYTHON" -m pip download --quiet --no-deps --require-hashes \
  --dest "$work" -r "$work/llama.txt"
tar -xzf "$work"/llama_cpp_python-"$VERSION".tar.gz -C "$work"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S "$src" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DBUILD_SHARED_LIBS=OFF
cmake --build "$work/build" --target llama-server -j "$(nproc)"

# Installed under a temporary name, then renamed: a build cut short leaves no half binary.
mkdir -p "$(dirname "$DEST")"
cp "$work/build/bin/llama-server" "$DEST.partial"
mv "$DEST.partial" "$DEST"
"$DEST" --version
echo "llmbench: llama-server $VERSION built: $DEST"
