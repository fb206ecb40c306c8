#!/usr/bin/env bash
# bench-ratio.sh: the managed wrapper's cost as a ratio of the raw libvirt floor.
#
# Builds and runs native/build/libvirt-floor (C, raw libvirt call loops on test:///default),
# then the BenchmarkDotNet suite tests/ComputeAgent.Libvirt.Benchmarks (the same five loops
# through ComputeAgent.Libvirt, Release, in-process), one after the other, never at the same
# time, and prints
#   loop | C ns/op | managed ns/op | ratio managed/C | the ratio of each run
# joined by loop name, then whether every ratio is <= the limit (1.10).
#
# One process of either side varies by up to ~10% from the next on a small VM (heap layout,
# neighbours), more than the margin being checked, so the pair is run --runs times,
# alternating C, managed, C, managed, ...; each side's ns/op is the median over its runs of the
# per-run figure (itself a median over rounds/iterations, see libvirt-floor.c and FloorConfig).
#
# usage: native/bench-ratio.sh [--check] [--limit R] [--runs N]
#   --check     exit 1 when a ratio is above the limit (default: exit 0 either way)
#   --limit R   the ratio limit (default 1.10)
#   --runs N    C + managed pairs to run (default 3; each pair takes ~35 s on 2 cores)
#   --no-run    build and run nothing: print the table from the results of the last run
# Exit codes: 0 ok (or ratios above the limit without --check), 1 a ratio above the limit
# with --check, 2 something failed to build or run, or the two result sets do not match.
#
# Environment:
#   BENCH_RATIO_OUT        where results go (default native/build/bench-ratio): per run K,
#                          floor-K.tsv and floor-K.log (C), bdn-K/ (BenchmarkDotNet artifacts:
#                          results/*.csv, *.json, libvirt-floor-managed.tsv) and bdn-K.log;
#                          ratio.tsv (the table)
#   BENCH_BUILD_ARTIFACTS  dotnet --artifacts-path for the Release build (default a private
#                          folder under ${TMPDIR:-/tmp}, so it never shares obj/ with other builds)
# Needs: bash, awk, make, gcc, pkg-config, libvirt-dev, the .NET SDK. No python.
set -euo pipefail

check=0
limit=1.10
runs=3
run_benchmarks=1
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --limit)
      [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "bench-ratio: --limit needs a number" >&2; exit 2; }
      limit=$2
      shift
      ;;
    --runs)
      [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "bench-ratio: --runs needs a positive integer" >&2; exit 2; }
      runs=$2
      shift
      ;;
    --no-run) run_benchmarks=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "bench-ratio: unknown argument '$1' (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
project="$repo/tests/ComputeAgent.Libvirt.Benchmarks"
out=${BENCH_RATIO_OUT:-$repo/native/build/bench-ratio}
build_artifacts=${BENCH_BUILD_ARTIFACTS:-${TMPDIR:-/tmp}/compute-agent-bench-ratio-build}
start=$(date +%s)
step() { printf 'bench-ratio: [%3ss] %s\n' "$(($(date +%s) - start))" "$*" >&2; }
fail() {
  echo "bench-ratio: $1 failed; last lines of $2:" >&2
  tail -n 30 "$2" >&2
  exit 2
}

if [ "$run_benchmarks" = 1 ]; then
  mkdir -p "$out"
  rm -rf "$out"/bdn-* "$out"/floor-* "$out/ratio.tsv"

  step "make -C native"
  make -C "$repo/native" >"$out/make.log" 2>&1 || fail "make -C native" "$out/make.log"

  step "dotnet build -c Release (artifacts in $build_artifacts)"
  dotnet build -c Release "$project" --artifacts-path "$build_artifacts" -nologo >"$out/build.log" 2>&1 ||
    fail "dotnet build" "$out/build.log"

  for run in $(seq 1 "$runs"); do
    step "run $run/$runs: native/build/libvirt-floor"
    "$repo/native/build/libvirt-floor" >"$out/floor-$run.tsv" 2>"$out/floor-$run.log" ||
      fail "libvirt-floor" "$out/floor-$run.log"

    step "run $run/$runs: BenchmarkDotNet suite (log: $out/bdn-$run.log)"
    dotnet run -c Release --no-build --project "$project" --artifacts-path "$build_artifacts" -- \
      --artifacts "$out/bdn-$run" >"$out/bdn-$run.log" 2>&1 || fail "the BenchmarkDotNet suite" "$out/bdn-$run.log"
    [ -s "$out/bdn-$run/results/libvirt-floor-managed.tsv" ] ||
      fail "the BenchmarkDotNet suite (no libvirt-floor-managed.tsv)" "$out/bdn-$run.log"
  done
  step "done"
else
  runs=0
  while [ -s "$out/floor-$((runs + 1)).tsv" ] && [ -s "$out/bdn-$((runs + 1))/results/libvirt-floor-managed.tsv" ]; do
    runs=$((runs + 1))
  done
  [ "$runs" -gt 0 ] || { echo "bench-ratio: no results in $out to print" >&2; exit 2; }
fi

# Join by loop name, in the C program's order. Every file: header, then loop<TAB>iters<TAB>ns.
# The files come in pairs, floor-K.tsv then managed-K.tsv, for K = 1..runs.
files=()
for run in $(seq 1 "$runs"); do
  files+=("$out/floor-$run.tsv" "$out/bdn-$run/results/libvirt-floor-managed.tsv")
done
status=0
awk -F '\t' -v limit="$limit" -v ratio_out="$out/ratio.tsv" '
  function median(list,    v, k, m, i, j, t) {
    m = split(list, v, " ")
    for (i = 2; i <= m; i++) {
      t = v[i] + 0
      for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]
      v[j + 1] = t
    }
    k = int((m + 1) / 2)
    return m % 2 ? v[k] + 0 : (v[k] + v[k + 1]) / 2
  }
  FNR == 1 { file++; run = int((file + 1) / 2); side = file % 2 ? "c" : "m"; next }
  {
    if (side == "c" && !($1 in c)) order[++n] = $1
    if (side == "c") c[$1] = c[$1] " " $3; else m[$1] = m[$1] " " $3
    val[side, $1, run] = $3
    runs = run
  }
  END {
    print "loop\tc_ns_per_op\tmanaged_ns_per_op\tratio\tper_run_ratios" > ratio_out
    printf "%-16s %12s %14s %10s   %s\n", "loop", "C ns/op", "managed ns/op", "managed/C", "per run"
    missing = 0; above = ""
    for (i = 1; i <= n; i++) {
      loop = order[i]
      if (!(loop in m)) {
        printf "%-16s %12.1f %14s %10s\n", loop, median(c[loop]), "missing", "-"
        missing++
        continue
      }
      # Judged as printed: 1.1004 shows and counts as 1.100.
      cm = median(c[loop]); mm = median(m[loop]); ratio = sprintf("%.3f", mm / cm) + 0
      per = ""
      for (r = 1; r <= runs; r++)
        if (((("c", loop, r) in val)) && ((("m", loop, r) in val)))
          per = per sprintf("%s%.3f", per == "" ? "" : " ", val["m", loop, r] / val["c", loop, r])
      flag = ratio > limit + 0 ? "   > " limit : ""
      printf "%-16s %12.1f %14.1f %10.3f   %s%s\n", loop, cm, mm, ratio, per, flag
      printf "%s\t%.1f\t%.1f\t%.3f\t%s\n", loop, cm, mm, ratio, per > ratio_out
      if (flag != "") above = above (above == "" ? "" : ", ") loop
    }
    for (loop in m) if (!(loop in c)) {
      printf "%-16s %12s %14.1f %10s\n", loop, "missing", median(m[loop]), "-"
      missing++
    }
    if (missing) { print "RESULT: the C and managed loop names differ; no verdict"; exit 3 }
    if (above == "") { printf "RESULT: every ratio managed/C is <= %s (%d run(s))\n", limit, runs; exit 0 }
    printf "RESULT: ratio managed/C above %s for: %s (%d run(s))\n", limit, above, runs
    exit 1
  }
' "${files[@]}" || status=$?

echo "bench-ratio: results in $out (ratio.tsv, floor-K.tsv, bdn-K/results/); took $(($(date +%s) - start)) s" >&2
case $status in
  0) exit 0 ;;
  1) [ "$check" = 1 ] && exit 1 || exit 0 ;;
  *) exit 2 ;;
esac
