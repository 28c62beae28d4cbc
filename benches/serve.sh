# Sourced by the bench scripts: `serve_example BIN DIR [CONFIG]` starts BIN's `weir serve` on
# CONFIG (examples/weir.yaml when left out) with its data in DIR, on free loopback ports, and returns once it is ready,
# with SERVE_PID and SERVE_BASE set.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

serve_example() {
  local bin=$1 dir=$2 config=${3:-examples/weir.yaml} port
  port=$(free_port)
  SERVE_BASE=http://127.0.0.1:$port
  "$bin" serve --config "$config" --data-dir "$dir/data" \
    --http-listen "127.0.0.1:$port" --s3-listen "127.0.0.1:$(free_port)" >"$dir/serve.log" 2>&1 &
  SERVE_PID=$!
  for _ in $(seq 300); do
    python3 -c "import urllib.request; urllib.request.urlopen('$SERVE_BASE/healthz/ready')" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "weir serve did not become ready; its log: $dir/serve.log" >&2
  return 1
}
