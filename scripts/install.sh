#!/usr/bin/env bash
# Create .venv and install llmbench with its dependencies.
#
# llama-cpp-python has no portable wheel on PyPI for this platform: it is compiled once per
# machine with CPU flags that avoid the SIGILL a native (-march=native) build hits on VMs
# that advertise instructions (AMX) they do not allow. The wheel is cached outside the repo,
# so fresh clones and CI reuse it instead of compiling again.
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-}
WHEEL_DIR=${LLMBENCH_WHEEL_DIR:-$HOME/.cache/llmbench/wheels}
LLAMA_VERSION=$(sed -n 's/.*"llama-cpp-python\(\[[a-z,]*\]\)\{0,1\}==\([0-9.]*\)".*/\2/p' pyproject.toml)
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"

if [ ! -x "$VENV/bin/python" ]; then
  echo "llmbench: creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
fi

mkdir -p "$WHEEL_DIR"
if ! ls "$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "llmbench: building llama-cpp-python $LLAMA_VERSION from source, once for this machine."
  echo "llmbench: this takes about 7 minutes on 2 cores; the wheel is kept in $WHEEL_DIR."
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$VENV/bin/pip" wheel --no-deps --wheel-dir "$WHEEL_DIR" "llama-cpp-python==$LLAMA_VERSION"
fi

spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
echo "llmbench: installing dependencies into $VENV"
"$VENV/bin/pip" install --quiet --find-links "$WHEEL_DIR" --only-binary llama-cpp-python -e "$spec"
