#!/usr/bin/env bash
# Installs the Debian packages the sandbox runs for real: PostgreSQL, Redis, nginx,
# RabbitMQ, Prometheus and Alertmanager (with promtool and amtool, which check
# deploy/monitoring); nftables, whose nft silences a failed database or cache host;
# iptables (iptables-nft), whose NFQUEUE target feeds the netem worker that delays, drops
# and rate-limits pod traffic (this kernel has no netem); and chromium, in which the
# tests open game-day reports. Idempotent: does nothing when they
# are already there. As root it uses apt-get and keeps the
# packages' own services from starting (the sandbox runs its own instances on
# loopback); otherwise it says what to install.
set -euo pipefail

have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
have_postgres || missing+=(postgresql)
have redis-server || missing+=(redis-server)
have nginx || missing+=(nginx)
have chromium || missing+=(chromium)
have rabbitmq-server || missing+=(rabbitmq-server)
have promtool || missing+=(prometheus)
have prometheus-alertmanager || missing+=(prometheus-alertmanager)
have nft || missing+=(nftables)
have iptables || missing+=(iptables)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  # Stop the packages' init scripts from starting system-wide servers.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: kubectl not found on PATH; it renders deploy/ and is one of the clients the sandbox is tested with. Install kubectl 1.27 or newer." >&2
  exit 1
fi
