# Sourced by the shell test scripts (Tests/mpi, faults, scaling, cluster): one line per test and
# the closing "N passed, M failed" line that CI reads.
passed=0 failed=0

# result STATUS NAME [WHY]: counts and prints one test.
result() {
    if [ "$1" = 0 ]; then passed=$((passed + 1)); echo "ok   $2"
    else failed=$((failed + 1)); echo "FAIL $2${3:+: $3}"; fi
}

# summary: the closing line; fails when any test did.
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
