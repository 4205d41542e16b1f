#!/usr/bin/env bash
# Make sure a headless Chromium and its WebDriver are installed for the report browser test:
# install Debian's chromium and chromium-driver with apt when missing and allowed (root or
# sudo). Never downloads a browser from anywhere else.
set -u

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo -n "$@"; else return 1; fi; }

browser_ok() { (have chromium || have chromium-browser) && have chromedriver; }

if browser_ok; then
  echo "chromium: installed"
  exit 0
fi
echo "chromium: missing, installing chromium and chromium-driver with apt"
if have apt-get; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null 2>&1 || true
fi
if browser_ok; then
  echo "chromium: installed"
  exit 0
fi
echo "chromium: cannot install (no apt or no root); the report browser test will skip"
if [ -n "${CI:-}" ]; then
  echo "chromium is required when CI is set"; exit 1
fi
exit 0
