#!/usr/bin/env bash
# Make sure the tools the deployment-file tests validate with are installed: `docker compose`
# (or Debian's standalone docker-compose) for the compose file and systemd-analyze for the
# unit. Installs Debian's packages with apt when missing and allowed (root or sudo).
set -u

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo -n "$@"; else return 1; fi; }
compose_ok() { { have docker && docker compose version >/dev/null 2>&1; } || have docker-compose; }

missing=()
compose_ok || missing+=(docker-compose)
have systemd-analyze || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ] && have apt-get; then
  echo "tools: installing ${missing[*]} with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null 2>&1 || {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null 2>&1 || true
  }
fi
ok=1
compose_ok && echo "docker compose: installed" || { echo "docker compose: missing"; ok=0; }
have systemd-analyze && echo "systemd-analyze: installed" || { echo "systemd-analyze: missing"; ok=0; }
if [ "$ok" = 0 ] && [ -n "${CI:-}" ]; then
  echo "the deployment tools are required when CI is set"; exit 1
fi
exit 0
