# Sourced by install.sh and build_llama_server.sh: llama-cpp-python's pin in requirements.lock,
# which both build from (the wheel, the server), so they read it one way.

# The pinned version; exits 2 with the fix when the lock is missing or pins none.
lock_llama_version() {
  local lock=$1 version
  if [ ! -f "$lock" ]; then
    echo "llmbench: $lock is missing; run this from the repository root (or set LLMBENCH_LOCK)." >&2
    exit 2
  fi
  version=$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' "$lock")
  if [ -z "$version" ]; then
    echo "llmbench: $lock pins no llama-cpp-python; regenerate it with 'make lock'." >&2
    exit 2
  fi
  echo "$version"
}

# The lock's lines of llama-cpp-python's entry (want=llama: its `name==version \` line and the
# hash lines under it) or of every other entry (want=rest).
lock_llama_split() {
  awk -v want="$2" '
    /^[A-Za-z0-9]/ { llama = ($0 ~ /^llama-cpp-python==/) }
    (want == "llama") == llama { print }' "$1"
}
