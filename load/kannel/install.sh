#!/usr/bin/env bash
# Installs Kannel (Debian's package `kannel`: bearerbox, smsbox) for load/bench_vs_kannel.py when
# it is missing. As root it uses apt-get; otherwise it says what to install and exits 1.
# The package's own service is not wanted (the benchmark starts its private bearerbox and smsbox
# on loopback ports with load/kannel/kannel.conf.in): it is stopped and disabled when it started.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if have bearerbox && have smsbox; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's kannel (bearerbox, smsbox) for the Kannel benchmark"
  apt-get update -qq >/dev/null
  # policy-rc.d 101: the package's init script must not start a system-wide bearerbox.
  rc=/usr/sbin/policy-rc.d; made_rc=0
  if [ ! -e "$rc" ]; then printf '#!/bin/sh\nexit 101\n' >"$rc"; chmod +x "$rc"; made_rc=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kannel >/dev/null
  [ "$made_rc" = 1 ] && rm -f "$rc"
  exit 0
fi
echo "Kannel is missing: install Debian's package (e.g. 'sudo apt-get install kannel')" >&2
exit 1
