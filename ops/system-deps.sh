#!/usr/bin/env bash
# Installs the system programs the tests talk to, when missing: redis-server (every engine
# test), PostgreSQL's server (the archive's tests start a private one with initdb/pg_ctl),
# promtool/prometheus (alert rules, the scrape test), chromium (the console test), node and npm
# (the independent SMSC), espeak-ng and sox (placeholder IVR prompts: volna scenarios prompts --synth).
# As root it uses apt-get; otherwise it says what to install and stops when a required one is
# missing. REDIS_URL set means a Redis is provided, so redis-server is not required.
set -euo pipefail
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
[ -n "${REDIS_URL:-}" ] || need redis-server redis-server
# Debian's postgresql puts initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, off PATH.
if [ -z "${VOLNA_TEST_PG_DSN:-}" ] && ! command -v initdb >/dev/null 2>&1 \
   && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
need promtool prometheus
need chromium chromium
# the independent SMSC the SMPP connector is also tested against (node-smpp, tests/peers/node_smsc)
need node nodejs
need npm npm
need espeak-ng espeak-ng
need sox sox
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing system packages: ${missing[*]}" >&2
echo "install them (e.g. 'sudo apt-get install ${missing[*]}'), or set REDIS_URL for Redis and" >&2
echo "VOLNA_TEST_PG_DSN for PostgreSQL (a server where the tests may create databases)" >&2
if printf '%s\n' "${missing[@]}" | grep -qx -e redis-server -e postgresql; then exit 1; fi
echo "continuing: the tests that need the others will say they were skipped" >&2
