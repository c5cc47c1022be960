#!/usr/bin/env bash
# Installs what is missing, builds the `asan` preset (ASan + UBSan) and runs every test:
# unit tests, fuzz-corpus replays and the integration suite against the real binary.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

./scripts/install-deps.sh
cmake --preset asan
cmake --build --preset asan
# Memory bounds are a property of the optimised binary (ASan adds redzones and a quarantine),
# so the streaming tests run the release sluice.
cmake --preset release
cmake --build --preset release --target sluice
export SLUICE_RELEASE_BIN=$PWD/build/release/proxy/sluice
# detect_leaks: the process-wide singletons of the libraries are not leaks worth failing on,
# but our own code must be clean, so leaks stay on; halt_on_error makes UBSan fatal too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
ctest --preset asan -j "$(nproc)" "$@"
