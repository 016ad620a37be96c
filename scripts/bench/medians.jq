# medians.jq turns compare.sh's results (jq -s: an array of bench --json
# results tagged with load and server) into Markdown tables of medians.
def median: map(select(. != null)) | sort |
  if length == 0 then null
  elif length % 2 == 1 then .[length / 2 | floor]
  else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def fmt(d): if . == null then "-" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
def ok: "\(map(select(.ok)) | length)/\(length)";

def fanout($load; $title):
  (map(select(.load == $load)) | group_by(.target)) as $groups
  | ($groups | map({key: .[0].target, value: {
      ok: ok,
      sent: (map(.sent_per_sec) | median),
      dps: (map(.delivered_per_sec) | median),
      dpc: (map(.server.deliveries_per_cpu_second) | median),
      cpu: (map(.server.cpu_us_per_delivery) | median),
      p50: (map(.latency_us.p50) | median),
      p99: (map(.latency_us.p99) | median),
      lost: (map(.lost) | add),
      scpu: (map(.server.cpu_seconds) | median),
      bcpu: (map(.client_cpu_seconds) | median),
      secs: (map(.seconds) | median)
    }}) | from_entries) as $m
  | if ($groups | length) == 0 then empty else
    "\n### \($title)\n",
    "| server | runs ok | sent/s | delivered/s | deliveries per server CPU s | server CPU µs per delivery | p50 µs | p99 µs | lost (all runs) | server / bench CPU s over s |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ($m | to_entries[] | "| \(.key) | \(.value.ok) | \(.value.sent | fmt(0)) | \(.value.dps | fmt(0)) | \(.value.dpc | fmt(0)) | \(.value.cpu | fmt(2)) | \(.value.p50 | fmt(0)) | \(.value.p99 | fmt(0)) | \(.value.lost) | \(.value.scpu | fmt(1)) / \(.value.bcpu | fmt(1)) over \(.value.secs | fmt(1)) |"),
    (if $m.gorilla and $m["parley-mem"] then
      "\nparley (:memory:, JSON) / gorilla: deliveries per CPU s \(($m["parley-mem"].dpc / $m.gorilla.dpc) | fmt(2))x, delivered/s \(($m["parley-mem"].dps / $m.gorilla.dps) | fmt(2))x, p99 \(($m["parley-mem"].p99 / $m.gorilla.p99) | fmt(2))x" else empty end),
    (if $m.gorilla and $m["parley-text"] then
      "parley (:memory:, text) / gorilla: deliveries per CPU s \(($m["parley-text"].dpc / $m.gorilla.dpc) | fmt(2))x, delivered/s \(($m["parley-text"].dps / $m.gorilla.dps) | fmt(2))x, p99 \(($m["parley-text"].p99 / $m.gorilla.p99) | fmt(2))x" else empty end),
    (if $m["parley-sqlite"] and $m["parley-mem"] then
      "parley SQLite file / :memory:: delivered/s \(($m["parley-sqlite"].dps / $m["parley-mem"].dps) | fmt(2))x, deliveries per CPU s \(($m["parley-sqlite"].dpc / $m["parley-mem"].dpc) | fmt(2))x" else empty end)
  end;

def idle:
  (map(select(.load == "c")) | group_by(.target)) as $groups
  | ($groups | map({key: .[0].target, value: {
      ok: ok,
      n: .[0].idle,
      secs: (map(.connect.seconds) | median),
      p99: (map(.connect.p99_ms) | median),
      rss: (map(.server.rss_per_conn_kib) | median),
      cpu: (map(.server.cpu_seconds) | median),
      held: (map(.held_seconds) | median)
    }}) | from_entries) as $m
  | if ($groups | length) == 0 then empty else
    "\n### (c, d) idle connections, opened 100 at a time\n",
    "| server | runs ok | connections | time to open all (s) | each, p99 (ms) | server RSS per connection (KiB) | server CPU while held (s) |",
    "|---|---|---|---|---|---|---|",
    ($m | to_entries[] | "| \(.key) | \(.value.ok) | \(.value.n) | \(.value.secs | fmt(2)) | \(.value.p99 | fmt(1)) | \(.value.rss | fmt(1)) | \(.value.cpu | fmt(2)) over \(.value.held | fmt(0)) s |"),
    (if $m.gorilla and $m["parley-mem"] then
      "\nparley / gorilla: RSS per connection \(($m["parley-mem"].rss / $m.gorilla.rss) | fmt(2))x, time to open \(($m["parley-mem"].secs / $m.gorilla.secs) | fmt(2))x" else empty end)
  end;

fanout("a"; "(a, e) 1,000 subscribers, 4 publishers, --rate 0, 64 B"),
fanout("b"; "(b) 1,000 subscribers, 4 publishers, --rate 200 in total, 64 B"),
idle
