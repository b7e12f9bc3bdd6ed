#!/usr/bin/env bash
# The given tests on the newest provider SDKs that pyproject.toml's version ranges allow.
#
# requirements.lock keeps every run on the SDKs CI tested; a user who installs without it
# (`pip install -e .`) gets the newest releases inside the ranges instead. This installs the lock
# into a separate venv, upgrades only the provider SDKs (and what their new releases require),
# and runs the tests, so a release that changes llmbench's behaviour shows up here first: narrow
# that SDK's range in pyproject.toml, or adapt the provider, then `make lock`.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LATEST_SDKS_VENV:-.venv-latest-sdks}
SDKS="openai anthropic google-genai ollama"

VENV="$VENV" bash scripts/install.sh

mapfile -t specs < <("$VENV/bin/python" - "$SDKS" <<'EOF'
import re
import sys
import tomllib

wanted = set(sys.argv[1].split())
with open("pyproject.toml", "rb") as file:
    dependencies = tomllib.load(file)["project"]["dependencies"]
for spec in dependencies:
    name = re.match(r"[A-Za-z0-9_.-]+", spec)
    if name and name[0].lower() in wanted:
        print(spec)
EOF
)
if [ "${#specs[@]}" -ne "$(wc -w <<<"$SDKS")" ]; then
  echo "latest_sdks: expected one range each for $SDKS in pyproject.toml, found: ${specs[*]}" >&2
  exit 2
fi

echo "latest_sdks: upgrading ${specs[*]}"
"$VENV/bin/pip" install --quiet --upgrade --upgrade-strategy only-if-needed "${specs[@]}"
"$VENV/bin/pip" check
echo "latest_sdks: testing with"
"$VENV/bin/pip" list --format=freeze 2>/dev/null \
  | grep -iE '^(openai|anthropic|google-genai|ollama|httpx|httpx2|aiohttp)==' | sed 's/^/  /'
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
