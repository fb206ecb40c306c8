#!/usr/bin/env bash
# Installs what is missing, starts libvirtd, builds the test guest, and runs every test project,
# the Nova driver's pytest suite and the end-to-end run through a real Nova.
# Ends with one line summing every project's results, read from the runners' TRX and JUnit files.
#   ./test.sh            everything (unit, test:///default, real QEMU guests)
#   ./test.sh --fast     everything but the tests that boot QEMU guests (Category=Qemu)
# With CI=true (.ci/run sets it) or COMPUTE_AGENT_STRICT_SKIPS=1, a skipped test whose reason is
# not in tests/known-skips.txt fails the run (tests/host/check-skips.py).
set -euo pipefail
cd "$(dirname "$0")"

filter=""
if [[ ${1:-} == "--fast" ]]; then
  filter="Category!=Qemu"
fi

bash tests/host/ensure-host.sh
if [[ -z $filter ]]; then
  bash tests/guest/build-guest.sh >/dev/null
  # The Debian cloud image for the cloud-init test (debootstrap as root; cached, a few minutes the first time).
  if [[ $(id -u) -eq 0 ]]; then
    bash tests/guest/build-cloud-image.sh >/dev/null
  fi
fi

results=TestResults
rm -rf "$results"
dotnet build ComputeAgent.sln -c Release -warnaserror -nologo -v quiet

status=0
for project in tests/*.Tests/*.Tests.csproj; do
  name=$(basename "$project" .csproj)
  [[ $name == ComputeAgent.Install.Tests ]] && continue # the install step below runs it
  echo "== $name"
  # One project at a time: the QEMU tests of different projects share libvirtd and 2 cores.
  if ! dotnet test "$project" -c Release --no-build --nologo \
      ${filter:+--filter "$filter"} \
      --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" \
      --results-directory "$results"; then
    status=1
  fi
done

# The install step: installs the .deb on this machine, runs it as its unit would, removes and
# purges it (tests/install/install-test.sh), so it runs alone, after every other project. Its
# steps skip, saying why, when not root. Its TRX is counted below like any project's.
echo "== ComputeAgent.Install.Tests (the .deb on this machine)"
if ! COMPUTE_AGENT_INSTALL_TEST=1 dotnet test tests/ComputeAgent.Install.Tests/ComputeAgent.Install.Tests.csproj \
    -c Release --no-build --nologo ${filter:+--filter "$filter"} \
    --logger "trx;LogFileName=ComputeAgent.Install.Tests.trx" --logger "console;verbosity=normal" \
    --results-directory "$results"; then
  status=1
fi

# The Nova driver (Python): its pytest suite against a real agent on test:///default, then, with
# the QEMU tests, a real Nova stack driving a real guest through every seed command (as root).
echo "== nova-compute-agent (pytest)"
if ! bash src/nova-compute-agent/run-tests.sh "$results/nova-compute-agent.xml"; then
  status=1
fi
if [[ -z $filter ]]; then
  echo "== Nova end to end (tests/nova/run-e2e.sh)"
  if ! bash tests/nova/run-e2e.sh "$results/nova-e2e.xml"; then
    status=1
  fi
fi

passed=0 failed=0 skipped=0
shopt -s nullglob
trx_files=("$results"/*.trx)
junit_files=("$results"/*.xml)
if ((${#trx_files[@]} == 0)); then
  echo "no test results were written" >&2
  status=1
fi
# pytest's JUnit XML: every <testsuite> counts its tests, failures, errors and skips.
for junit in "${junit_files[@]}"; do
  suite() { xmllint --xpath "sum(//*[local-name()='testsuite']/@$1)" "$junit"; }
  total=$(suite tests) junit_failed=$(($(suite failures) + $(suite errors))) junit_skipped=$(suite skipped)
  passed=$((passed + total - junit_failed - junit_skipped))
  failed=$((failed + junit_failed))
  skipped=$((skipped + junit_skipped))
done
for trx in "${trx_files[@]}"; do
  counter() { xmllint --xpath "string(//*[local-name()='Counters']/@$1)" "$trx"; }
  passed=$((passed + $(counter passed)))
  failed=$((failed + $(counter failed) + $(counter error) + $(counter timeout) + $(counter aborted)))
  # A skipped test is counted in total but not in executed (notExecuted stays 0 for xunit skips).
  skipped=$((skipped + $(counter total) - $(counter executed)))
done
if ((passed == 0)); then
  status=1
fi
# A host that cannot run QEMU, D-Bus or install tests skips them: under CI that is a failure.
if ! /usr/bin/python3 tests/host/check-skips.py "${trx_files[@]}" "${junit_files[@]}"; then
  status=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
