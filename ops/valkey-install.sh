#!/usr/bin/env bash
# Installs a Redis-compatible server new enough for WAITAOF (Redis >= 7.2) into a cache folder,
# for the tests and benchmarks of the durable point of no return (docs/failover.md), when the
# machine's redis-server is older (Debian 12 ships 7.0). It takes Debian's valkey-server and
# valkey-tools from bookworm-backports (Valkey 8: the Redis 7.2 fork, same protocol, AOF,
# replication and Sentinel) with a private apt configuration, and unpacks them there: nothing is
# installed system-wide, the system's apt sources are not touched.
# Prints the folder holding valkey-server; exits 1 (with the reason on stderr) when it cannot.
set -euo pipefail
cache="${VOLNA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/volna}/valkey"
bin="$cache/root/usr/bin"
mkdir -p "$cache"
# One install at a time (test workers in parallel each ask for it).
exec 9>"$cache/.lock"
flock 9
if [ -x "$bin/valkey-server" ] && "$bin/valkey-server" --version >/dev/null 2>&1; then
  echo "$bin"; exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "valkey-install: apt-get is not available" >&2; exit 1; }
mkdir -p "$cache/lists/partial" "$cache/cache/archives/partial" "$cache/debs"
echo "deb http://deb.debian.org/debian bookworm-backports main" >"$cache/sources.list"
opts=(-o "Dir::Etc::SourceList=$cache/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache/cache" -o APT::Sandbox::User=root)
apt-get -qq "${opts[@]}" update >&2
(cd "$cache/debs" && apt-get -qq "${opts[@]}" download valkey-server valkey-tools >&2)
for deb in "$cache"/debs/*.deb; do dpkg -x "$deb" "$cache/root"; done
"$bin/valkey-server" --version >/dev/null || { echo "valkey-install: valkey-server does not run here" >&2; exit 1; }
echo "$bin"
