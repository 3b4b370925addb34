#!/usr/bin/env bash
# Java 17 for the Spark screening engine (leukos screen --engine spark; pyspark 4.0 needs Java 17+).
# Installs a headless JRE with apt-get only when no `java` is on the PATH.
set -euo pipefail
if command -v java >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless
