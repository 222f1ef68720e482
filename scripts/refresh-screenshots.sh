#!/usr/bin/env bash
# Refresh the README's pictures (docs/*.png) on purpose: run the browser tests that take them, writing to docs/
# instead of test-artifacts/. A normal test run never touches docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
export LITELLM_LOCAL_MODEL_COST_MAP=True COGSCOPE_SCREENSHOTS=docs
.venv/bin/pytest -q -p no:cacheprovider -k "not postgresql" \
  tests/test_browser_run_tab.py tests/test_browser_traces_tab.py tests/test_browser_dashboard_tab.py \
  tests/test_browser_trust.py "$@"
git status --short docs/
