#!/usr/bin/env bash
# bench-footprint.sh: issue 18's footprint and overhead table on test:///default, agent against raw
# libvirt in the same run, from the benchmarks that already measure each row (run one after the
# other, never at the same time):
#   tests/ComputeAgent.Host.Benchmarks -- --footprint 1000,5000   start to READY; RSS and managed heap
#                                                                (dotnet-gcdump) idle, at 1,000 and 5,000
#   tests/ComputeAgent.Host.Benchmarks -- 0                       cached spawn to ACTIVE against qemu-img
#                                                                overlay + define + create; pause to PAUSED
#                                                                on the watch stream against virDomainSuspend
#   tests/ComputeAgent.Instances.Benchmarks -- --reconcile-cpu    CPU per reconcile pass against one
#                                                                virConnectGetAllDomainStats(STATE)
#   tests/ComputeAgent.Instances.Benchmarks -- --raw-hold N       what libvirt's test driver itself holds
#                                                                for N of the agent's domains (it runs
#                                                                inside the process that opens it)
# and the .deb's size when packaging/build/ holds one (packaging/build-deb.sh builds it).
# Benchmarks are not tests: nothing here fails on a figure; the targets are printed beside them.
#
# usage: tests/bench-footprint.sh [--counts A,B] [--no-run]
#   --counts A,B  instance counts for the memory rows (default 1000,5000; the table reads the first)
#   --no-run      build and run nothing: print the table from the logs of the last run
# Exit codes: 0 the table was printed, 2 something failed to build or run (its log's tail is shown).
#
# Environment:
#   BENCH_FOOTPRINT_OUT  where the logs go (default native/build/bench-footprint): footprint.log,
#                        agent.log, reconcile.log, raw.log, build.log, table.txt
#   DOTNET_GCDUMP        the dotnet-gcdump executable (default: installed as a .NET tool into
#                        $BENCH_FOOTPRINT_OUT/tools from NuGet when not there yet)
# Needs: the .NET SDK, qemu-img, libvirt (test:///default is in-process: no libvirtd), awk.
set -euo pipefail

counts=1000,5000
run_benchmarks=1
while [ $# -gt 0 ]; do
  case "$1" in
    --counts)
      [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "bench-footprint: --counts needs A,B (positive integers)" >&2; exit 2; }
      counts=$2
      shift
      ;;
    --no-run) run_benchmarks=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "bench-footprint: unknown argument '$1' (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${BENCH_FOOTPRINT_OUT:-$repo/native/build/bench-footprint}
host_bench="$repo/tests/ComputeAgent.Host.Benchmarks"
engine_bench="$repo/tests/ComputeAgent.Instances.Benchmarks"
start=$(date +%s)
step() { printf 'bench-footprint: [%3ss] %s\n' "$(($(date +%s) - start))" "$*" >&2; }
fail() {
  echo "bench-footprint: $1 failed; last lines of $2:" >&2
  tail -n 30 "$2" >&2
  exit 2
}

if [ "$run_benchmarks" = 1 ]; then
  mkdir -p "$out"
  rm -f "$out"/*.log "$out/table.txt"
  gcdump=${DOTNET_GCDUMP:-$out/tools/dotnet-gcdump}
  if [ ! -x "$gcdump" ]; then
    step "dotnet tool install dotnet-gcdump --tool-path $out/tools"
    dotnet tool install dotnet-gcdump --tool-path "$out/tools" >"$out/build.log" 2>&1 || fail "dotnet tool install dotnet-gcdump" "$out/build.log"
  fi

  # The agent binary the benchmarks start is src/ComputeAgent.Host's Release build.
  step "dotnet build -c Release (the agent, the CLI, both benchmark projects)"
  for project in "$repo/src/ComputeAgent.Host" "$host_bench" "$engine_bench"; do
    dotnet build -c Release "$project" -nologo -v quiet >>"$out/build.log" 2>&1 || fail "dotnet build $project" "$out/build.log"
  done

  step "start to READY, then RSS and managed heap at 0,$counts instances (log: $out/footprint.log)"
  DOTNET_GCDUMP=$gcdump dotnet run -c Release --no-build --project "$host_bench" -- --footprint "$counts" 15 >"$out/footprint.log" 2>&1 ||
    fail "the footprint benchmark" "$out/footprint.log"

  step "spawn and pause against the same libvirt calls made directly (log: $out/agent.log)"
  dotnet run -c Release --no-build --project "$host_bench" -- 0 >"$out/agent.log" 2>&1 || fail "the agent benchmark" "$out/agent.log"

  step "CPU per reconcile pass, ${counts%%,*} instances (log: $out/reconcile.log)"
  dotnet run -c Release --no-build --project "$engine_bench" -- --reconcile-cpu "${counts%%,*}" 200 >"$out/reconcile.log" 2>&1 ||
    fail "the reconcile benchmark" "$out/reconcile.log"
  for count in ${counts//,/ }; do
    step "raw libvirt holding $count of the agent's domains in this process (log: $out/raw.log)"
    dotnet run -c Release --no-build --project "$engine_bench" -- --raw-hold "$count" >>"$out/raw.log" 2>&1 ||
      fail "the raw-hold benchmark" "$out/raw.log"
  done
  step "done"
fi

for log in footprint agent reconcile raw; do
  [ -s "$out/$log.log" ] || { echo "bench-footprint: no $out/$log.log to print (run without --no-run first)" >&2; exit 2; }
done
deb=$(ls -t "$repo"/packaging/build/compute-agent_*_amd64.deb 2>/dev/null | head -n 1 || true)
deb_bytes=$([ -n "$deb" ] && stat -c %s "$deb" || echo "")

# Each benchmark prints fixed lines; read the figures from them.
awk -v deb_bytes="$deb_bytes" -v deb="${deb##*/}" '
  FILENAME ~ /footprint.log$/ && /^start to READY/ { ready = $0; sub(/.*median /, "", ready); sub(/ ms.*/, "", ready) }
  FILENAME ~ /footprint.log$/ && $1 ~ /^[0-9]+$/ && $2 != "B/instance" && NF == 7 {
    if ($1 == 0) idle = $2
    else { n++; count[n] = $1; rss[n] = $2; heap[n] = $4; rsspi[n] = $5; mheap[n] = $6; mrss[n] = $7 }
  }
  FILENAME ~ /agent.log$/ && /^spawn \(cached image\)/ { spawn_agent = $(NF - 3); spawn_raw = $(NF - 1) }
  FILENAME ~ /agent.log$/ && /^pause, call to PAUSED/ { pause_agent = $(NF - 3); pause_raw = $(NF - 1) }
  FILENAME ~ /raw.log$/ && /^raw libvirt holding/ { held[$4] = $0; sub(/.*RSS \+/, "", held[$4]); sub(/ MiB.*/, "", held[$4]) }
  FILENAME ~ /reconcile.log$/ && /^reconcile pass/ {
    line = $0
    sub(/^[^:]*: CPU /, "", line); rec_agent = line + 0
    sub(/.*directly: CPU /, "", line); rec_raw = line + 0
  }
  function dashes(k,    d) { d = ""; while (k-- > 0) d = d "-"; return d }
  function ms(v) { sub(/ms$/, "", v); return v + 0 }
  function row(measure, agent, raw, ratio, target) { printf "| %-46s | %-27s | %-27s | %-7s | %-24s |\n", measure, agent, raw, ratio, target }
  END {
    row("measure (test:///default, one run)", "agent", "raw libvirt", "ratio", "target (issue 18)")
    print "|" dashes(48) "|" dashes(29) "|" dashes(29) "|" dashes(9) "|" dashes(26) "|"
    row("RSS idle, 0 instances", sprintf("%.1f MiB", idle), "-", "-", "<= 40 MB")
    for (i = 1; i <= n; i++)
      row(sprintf("RSS with %d instances", count[i]), sprintf("%.1f MiB (%.1f KiB/inst)", rss[i], rsspi[i]), sprintf("+%.1f MiB (%.1f KiB/dom)", held[count[i]], held[count[i]] * 1024 / count[i]), "-", count[i] == 1000 ? "<= 80 MB (<= 40 KB/inst)" : "-")
    for (i = 1; i <= n; i++)
      row(sprintf("RSS with %d, less what libvirt holds", count[i]), sprintf("%.1f KiB/inst", ((rss[i] - idle) - held[count[i]]) * 1024 / count[i]), "-", "-", "-")
    for (i = 1; i <= n; i++)
      row(sprintf("managed heap per instance, %d", count[i]), heap[i] " B", "-", "-", "-")
    if (n > 1) row(sprintf("marginal RSS per instance, %d to %d", count[n - 1], count[n]), sprintf("%s KiB (heap %s B)", mrss[n], mheap[n]), sprintf("%.1f KiB", (held[count[n]] - held[count[n - 1]]) * 1024 / (count[n] - count[n - 1])), "-", "<= 40 KB/inst")
    row("pause -> PAUSED on the watch stream (p50)", sprintf("%.2f ms", ms(pause_agent)), sprintf("%.4f ms (Suspend)", ms(pause_raw)), ms(pause_raw) > 0 ? sprintf("%.0f", ms(pause_agent) / ms(pause_raw)) : "-", "<= 0.8 ms")
    row("cached spawn -> ACTIVE (p50)", sprintf("%.2f ms", ms(spawn_agent)), sprintf("%.2f ms (overlay+def+cr)", ms(spawn_raw)), sprintf("%.2f", ms(spawn_agent) / ms(spawn_raw)), sprintf("<= raw + 5 ms (+%.1f ms)", ms(spawn_agent) - ms(spawn_raw)))
    row(sprintf("reconcile CPU per pass, %d instances", count[1]), sprintf("%.2f ms", rec_agent), sprintf("%.2f ms (bulk state)", rec_raw), sprintf("%.2f", rec_agent / rec_raw), "<= 1.5 x raw")
    row(".deb size", deb_bytes == "" ? "not built" : sprintf("%.1f MB", deb_bytes / 1e6), "-", "-", "<= 15 MB")
    row("start -> READY (health SERVING, median of 5)", ready " ms", "-", "-", "<= 150 ms")
  }
' "$out/footprint.log" "$out/agent.log" "$out/reconcile.log" "$out/raw.log" | tee "$out/table.txt"
echo "bench-footprint: logs and table.txt in $out; took $(($(date +%s) - start)) s" >&2
