#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) answer: start them when
# installed but down, install them with apt when missing and allowed (root or sudo).
set -u

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo -n "$@"; else return 1; fi; }

redis_up() { have redis-cli && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
pg_up() { have pg_isready && pg_isready -h 127.0.0.1 -p 5432 -q; }

apt_install() {
  if have apt-get; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
  else
    return 1
  fi
}

ensure_redis() {
  redis_up && { echo "redis: up"; return 0; }
  if ! have redis-server; then
    echo "redis: not installed, installing with apt"
    apt_install redis-server || { echo "redis: cannot install (no apt or no root)"; return 1; }
  fi
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 \
    || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      >/dev/null 2>&1
  for _ in $(seq 1 30); do redis_up && { echo "redis: started"; return 0; }; sleep 0.5; done
  echo "redis: not answering on 127.0.0.1:6379"; return 1
}

ensure_postgres() {
  pg_up && { echo "postgres: up"; return 0; }
  if ! have pg_ctlcluster && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "postgres: not installed, installing with apt"
    apt_install postgresql || { echo "postgres: cannot install (no apt or no root)"; return 1; }
  fi
  if have pg_ctlcluster; then
    for version in $(ls /etc/postgresql 2>/dev/null); do
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    done
  fi
  for _ in $(seq 1 40); do pg_up && { echo "postgres: started"; return 0; }; sleep 0.5; done
  echo "postgres: not answering on 127.0.0.1:5432"; return 1
}

status=0
ensure_redis || status=1
ensure_postgres || status=1
if [ "$status" != 0 ] && [ -n "${CI:-}" ]; then
  echo "required services are missing and CI is set"; exit 1
fi
exit 0
