#!/usr/bin/env bash
# Extended API fuzzing (docs/faults.md, "Extended fuzzing"): tests/test_api_fuzz.py with
# more schemathesis examples per operation and role than the CI run's 6.
#
#   bench/fuzz_api.sh [EXAMPLES] [LOG]        # default 30 examples, var/fuzz/api.log
#
# The same test, seeded world, checks (no 5xx, status code, content type and body as
# documented, a refused write stores nothing) and database as scripts/test (SQLite unless
# DATABASE_URL is set), in a scratch GOVSITE_VAR_DIR. Prints the examples Hypothesis ran
# (summed over every operation and role), the failures, the wall time and the peak RSS
# of the pytest process (the live server runs in it, in a thread).
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-30}"
log="${2:-var/fuzz/api.log}"
mkdir -p "$(dirname "$log")"
export GOVSITE_VAR_DIR="${GOVSITE_VAR_DIR:-$PWD/var/fuzz/api-state}"
export FUZZ_EXAMPLES="$examples"
started=$(date +%s)
set +e
/usr/bin/time -f "peak RSS %M KiB" .venv/bin/python -m pytest -p no:cacheprovider -q \
  tests/test_api_fuzz.py --hypothesis-show-statistics -o addopts="" -rfE >"$log" 2>&1
rc=$?
set -e
wall=$(($(date +%s) - started))
echo "FUZZ_EXAMPLES=$examples, log $log"
grep -E "^(FAILED|ERROR)" "$log" | head -20 || true
tail -n 3 "$log" | grep -E "passed|failed|error" || true
# Hypothesis statistics, per test: "- N passing, M failing, and K invalid test cases".
awk '/ passing, .* failing, .* invalid/ { gsub(",", ""); p += $2; f += $4; i += $7 }
     END { printf "examples run: %d passing, %d failing, %d invalid (over all tests)\n", p, f, i }' "$log"
echo "lines reporting a server error (5xx): $(grep -c "Server error" "$log" || true)"
grep -E "^peak RSS" "$log" || true
echo "wall time: ${wall} s, pytest exit status $rc"
exit "$rc"
