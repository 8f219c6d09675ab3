#!/usr/bin/env bash
# The browser of the real-browser test (tests/test_serve.py::test_the_page_in_headless_chromium): Debian's chromium
# and chromium-driver, installed with apt-get only when chromium is missing. `make test` runs this before pytest, so
# the test suite installs nothing itself.
#
# Where it cannot be installed (no apt-get, not root, no network), it says so and exits 0: the test then skips,
# naming the reason. With VLUNET_REQUIRE_BROWSER=1 (.ci/run sets it) that is an error instead, here and in the test.
set -euo pipefail
log() { echo "[install_browser] $*" >&2; }

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
why=""
if ! command -v apt-get >/dev/null 2>&1; then
  why="apt-get is not available"
elif [ "$(id -u)" != 0 ]; then
  why="installing needs root (sudo apt-get install chromium chromium-driver)"
else
  log "installing Debian's chromium and chromium-driver (once; a few minutes)"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2; then
    exit 0
  fi
  why="apt-get install chromium chromium-driver failed"
fi
if [ "${VLUNET_REQUIRE_BROWSER:-0}" = 1 ]; then
  log "error: chromium is missing and $why (VLUNET_REQUIRE_BROWSER=1)"
  exit 1
fi
log "chromium is missing and $why: the real-browser test will be skipped"
