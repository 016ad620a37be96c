#!/usr/bin/env bash
# compare.sh runs the loads of docs/benchmarks.md against parley (history in
# memory and in a SQLite file) and gorilla's chat example, side by side,
# RUNS times each, and prints the medians and ratios. Every run starts fresh
# servers. Needs go, jq, and a file-descriptor limit of at least 20,500.
#
#   scripts/bench/compare.sh            # all loads, 3 runs each
#   RUNS=5 LOADS="a b" scripts/bench/compare.sh
#   REV=abc1234 scripts/bench/compare.sh   # parley as of another commit
#
# Raw results (one JSON line per run) go to $OUT (default /tmp/parley-bench).
set -euo pipefail

RUNS=${RUNS:-3}
LOADS=${LOADS:-"a b c"}
OUT=${OUT:-/tmp/parley-bench}
DURATION=${DURATION:-10s}
IDLE=${IDLE:-10000}
PARLEY_PORT=${PARLEY_PORT:-18080}
GORILLA_PORT=${GORILLA_PORT:-18081}

cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
# 10,000 connections need 10,000 descriptors in the load generator and as
# many in the server; the servers inherit this limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((IDLE + 500)) ]; then
	echo "compare.sh: the file-descriptor limit $(ulimit -n) is below $((IDLE + 500))" >&2
	exit 1
fi

# Build parley from a commit (default HEAD), not the work tree, so what is
# measured is what is committed; and gorilla's chat example, from its module
# in a temporary module: its code never enters this repository.
REV=${REV:-HEAD}
commit=$(git rev-parse --short "$REV")
src=$(mktemp -d)
git archive "$REV" | tar -x -C "$src"
(cd "$src" && go build -o "$OUT/parley" ./cmd/parley)
rm -rf "$src"
if [ ! -x "$OUT/gorilla-chat" ]; then
	mod=$(mktemp -d)
	cat >"$mod/go.mod" <<'EOF'
module gorillachat

go 1.26

require github.com/gorilla/websocket v1.5.3
EOF
	(cd "$mod" && GOFLAGS=-mod=mod go build -o "$OUT/gorilla-chat" github.com/gorilla/websocket/examples/chat)
	rm -rf "$mod"
fi

server_pid=
stop_server() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	fi
}
trap stop_server EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port waits until the server just started listens on port $1.
wait_port() {
	for _ in $(seq 100); do
		kill -0 "$server_pid" 2>/dev/null || { echo "compare.sh: the server exited" >&2; exit 1; }
		if listening "$1"; then return 0; fi
		sleep 0.1
	done
	echo "compare.sh: nothing listens on port $1" >&2
	exit 1
}

# start_server NAME starts a fresh server; it sets server_pid and url.
start_server() {
	for p in "$PARLEY_PORT" "$GORILLA_PORT"; do
		if listening "$p"; then echo "compare.sh: port $p is taken" >&2; exit 1; fi
	done
	case $1 in
	parley-mem | parley-text)
		"$OUT/parley" serve --addr "127.0.0.1:$PARLEY_PORT" --db :memory: \
			--rate-limit 0 --max-connections 20000 --log-level warn &
		url=ws://127.0.0.1:$PARLEY_PORT/ port=$PARLEY_PORT ;;
	parley-sqlite)
		rm -f "$OUT"/bench.db*
		"$OUT/parley" serve --addr "127.0.0.1:$PARLEY_PORT" --db "$OUT/bench.db" \
			--rate-limit 0 --max-connections 20000 --log-level warn &
		url=ws://127.0.0.1:$PARLEY_PORT/ port=$PARLEY_PORT ;;
	gorilla)
		"$OUT/gorilla-chat" -addr "127.0.0.1:$GORILLA_PORT" 2>/dev/null &
		url=ws://127.0.0.1:$GORILLA_PORT/ws port=$GORILLA_PORT ;;
	esac
	server_pid=$!
	wait_port "$port"
}

# bench LOAD SERVER RUN: one fresh server, one run, one JSON line.
bench() {
	local load=$1 name=$2 run=$3 text=() args
	case $name in gorilla | parley-text) text=(--text) ;; esac
	case $load in
	a) args=(--subs 1000 --pubs 4 --rate 0 --size 64 --duration "$DURATION") ;;
	b) args=(--subs 1000 --pubs 4 --rate 200 --size 64 --duration "$DURATION") ;;
	c) args=(--idle "$IDLE" --connect-concurrency 100 --duration "$DURATION") ;;
	esac
	start_server "$name"
	echo "load $load, $name, run $run" >&2
	# A broken promise exits 1 but still prints its result: keep it.
	"$OUT/parley" bench --quiet --json "${text[@]}" "${args[@]}" --server-pid "$server_pid" "$url" \
		| jq -c --arg load "$load" --arg server "$name" '. + {load: $load, target: $server}' \
		>>"$OUT/results.jsonl" || true
	stop_server
}

: >"$OUT/results.jsonl"
for load in $LOADS; do
	case $load in
	a | b) servers="parley-mem parley-sqlite parley-text gorilla" ;;
	c) servers="parley-mem gorilla" ;;
	esac
	# Alternate the servers within each round, so noise from other work on
	# the machine falls on all of them alike.
	for run in $(seq "$RUNS"); do
		for s in $servers; do bench "$load" "$s" "$run"; done
	done
done

echo "parley $commit, $(go version | cut -d' ' -f3)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "runs per cell: $RUNS (median shown); raw results: $OUT/results.jsonl"
jq -rs -f scripts/bench/medians.jq "$OUT/results.jsonl"
