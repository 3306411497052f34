#!/usr/bin/env bash
# Proxy overhead: wrk (1 thread, 64 connections) against small JSON responses from one nginx backend,
# through: nothing (direct), nginx reverse proxy (keepalive upstream), HAProxy, and infergate.
# All targets run in the same invocation, so the ratios compare like with like on this machine.
# Usage: bench/proxy-overhead.sh [--duration SECONDS] [--connections N] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10 CONNS=64 JSON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --json) JSON="$2"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in wrk nginx haproxy; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/deps.sh bench" >&2; exit 1; }
done
BIN="${INFERGATE_BIN:-build/infergate}"
[ -x "$BIN" ] || { echo "build infergate first (make)" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

BACKEND=$(port) NGINX=$(port) HAPROXY=$(port) IG=$(port) IGADMIN=$(port)
body='{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"hello","finish_reason":"stop"}]}'

nginx_conf() { # name, server block
  mkdir -p "$work/$1"
  cat > "$work/$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1; proxy_temp_path $work/$1; fastcgi_temp_path $work/$1;
  uwsgi_temp_path $work/$1; scgi_temp_path $work/$1;
  $2
}
CONF
}
nginx_conf backend "server { listen 127.0.0.1:$BACKEND; keepalive_requests 1000000;
  location / { default_type application/json; return 200 '$body'; } }"
nginx_conf proxy "upstream be { server 127.0.0.1:$BACKEND; keepalive 64; }
  server { listen 127.0.0.1:$NGINX; keepalive_requests 1000000;
  location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAPROXY
  default_backend be
backend be
  server s1 127.0.0.1:$BACKEND
CONF

nginx -c "$work/backend/nginx.conf" -e "$work/backend/error.log" & pids+=($!)
nginx -c "$work/proxy/nginx.conf" -e "$work/proxy/error.log" & pids+=($!)
haproxy -f "$work/haproxy.cfg" -q & pids+=($!)
"$BIN" serve --listen "127.0.0.1:$IG" --admin "127.0.0.1:$IGADMIN" --backend "127.0.0.1:$BACKEND" \
  --log-level warn & pids+=($!)
for p in $BACKEND $NGINX $HAPROXY $IG; do wait_port "$p"; done

# wrk's --latency output: "Requests/sec: N" and "50% 1.23ms" lines; convert units to ms.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0;
  else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
declare -A RPS P50 P99 ERR
for target in direct:$BACKEND nginx:$NGINX haproxy:$HAPROXY infergate:$IG; do
  name="${target%%:*}" p="${target##*:}"
  wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$p/v1/ping" >/dev/null 2>&1 || true   # warm-up
  out="$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$p/v1/ping")"
  RPS[$name]="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  P50[$name]="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
  P99[$name]="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
  ERR[$name]="$(awk '/Non-2xx|Socket errors/ {sub(/^ +/, ""); printf "%s; ", $0}' <<<"$out")"
done

printf '\nproxy overhead: wrk -t1 -c%s -d%ss, small JSON from one nginx backend (%s cores)\n\n' \
  "$CONNS" "$DURATION" "$(nproc)"
printf '| target | req/s | p50 ms | p99 ms | req/s vs nginx | p99 vs nginx |\n|---|---|---|---|---|---|\n'
for name in direct nginx haproxy infergate; do
  awk -v n="$name" -v r="${RPS[$name]}" -v a="${P50[$name]}" -v b="${P99[$name]}" \
      -v nr="${RPS[nginx]}" -v nb="${P99[nginx]}" 'BEGIN {
    printf "| %s | %.0f | %.2f | %.2f | %.2fx | %.2fx |\n", n, r, a, b, r / nr, b / nb }'
done
for name in direct nginx haproxy infergate; do
  [ -n "${ERR[$name]}" ] && echo "note: $name: ${ERR[$name]}"
done
if [ -n "$JSON" ]; then
  {
    printf '{"duration_s": %s, "connections": %s, "targets": {' "$DURATION" "$CONNS"
    sep=""
    for name in direct nginx haproxy infergate; do
      printf '%s"%s": {"rps": %s, "p50_ms": %s, "p99_ms": %s}' "$sep" "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}"
      sep=", "
    done
    printf '}}\n'
  } > "$JSON"
fi
