#!/usr/bin/env bash
# Set up cogscope on a fresh Debian machine; idempotent: a second run reuses the install.
#   scripts/bootstrap.sh          Python venv in .venv with cogscope and its dependencies
#   scripts/bootstrap.sh --test   also Debian's chromium and an emoji font for the browser tests, and Debian's
#                                 postgresql (its server binaries: the tests start a throwaway cluster of their own)
set -euo pipefail
cd "$(dirname "$0")/.."
export LITELLM_LOCAL_MODEL_COST_MAP=True

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

python=""
for candidate in python3.11 python3.12 python3.13 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "cogscope needs Python 3.11 or newer: apt-get install python3 python3-venv" >&2; exit 2
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "A half-made .venv (no pip; was its creation interrupted?): making it again" >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv || { echo "creating .venv failed: apt-get install python3-venv" >&2; exit 2; }
fi

# the test extras (pytest, playwright's driver) are small: always installed, so one stamp covers both commands
stamp=".venv/.cogscope-installed"
digest="$(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "Installing cogscope into .venv (first time: about 6 minutes, most of it compiling llama-cpp-python) ..."
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  echo "$digest" > "$stamp"
fi

if [ "$want_test" = 1 ]; then
  missing=""
  [ -x /usr/bin/chromium ] || missing="$missing chromium"
  fc-list 2>/dev/null | grep -qi "Noto Color Emoji" || missing="$missing fonts-noto-color-emoji"
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing="$missing postgresql"
  if [ -n "$missing" ]; then
    echo "Installing Debian packages:$missing"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi
