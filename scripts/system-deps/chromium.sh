#!/usr/bin/env bash
# Debian's chromium for the Playwright browser tests (tests/service/test_ui_browser.py).
# Playwright drives it via executable_path="/usr/bin/chromium"; never Playwright's own browser download.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
