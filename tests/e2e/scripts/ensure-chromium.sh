#!/usr/bin/env bash
# Installs Debian's chromium for the browser test when /usr/bin/chromium is
# missing. Never downloads a browser build of its own (playwright-core only
# drives the system chromium).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  command -v sudo >/dev/null || { echo "chromium is missing: install Debian's chromium package (as root)" >&2; exit 1; }
  SUDO="sudo"
fi
echo "== installing Debian's chromium"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
