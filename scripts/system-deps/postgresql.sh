#!/usr/bin/env bash
# PostgreSQL server binaries for the registry tests (tests/registry: the test run starts its own
# throw-away server with initdb + pg_ctl on a free loopback port; nothing listens otherwise).
# Installs Debian's postgresql with apt-get only when no initdb is present.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql
