#!/usr/bin/env bash
# Installs what is missing and runs every check and test of Vigil: formatting, lints, the
# cross-platform checks of the capture backends, and the whole test suite (unit tests and the
# end-to-end tests on the test desktop that each test starts for itself).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== console (ui/): types, and the committed bundle is the build of the sources"
(cd ui && npm run --silent check && npm run --silent build)
git diff --exit-code --stat -- ui/dist || {
  echo "ui/dist differs from a fresh build of ui/src: run 'npm run build' in ui/ and commit it" >&2
  exit 1
}

echo "== module cycles"
python3 scripts/check-module-cycles.py --self-test
python3 scripts/check-module-cycles.py

echo "== cargo clippy (linux, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo clippy -p vigil-agent --features wayland"
cargo clippy -p vigil-agent --features wayland --all-targets --locked -- -D warnings

# The crates that hold platform backends must compile for Windows and macOS, their unit tests
# included (nothing can run them here).
for target in x86_64-pc-windows-gnu aarch64-apple-darwin; do
  echo "== cargo clippy -p vigil-capture -p vigil-mask --target $target --all-targets"
  cargo clippy -p vigil-capture -p vigil-mask --target "$target" --all-targets --locked -- -D warnings
done

# The Wayland backend's unit tests (the suite below builds the default, X11-only, features).
echo "== cargo test -p vigil-capture --features wayland --lib"
cargo test -p vigil-capture --features wayland --lib --locked

echo "== cargo test --workspace (built once; binaries run in two lanes)"
artifacts=$(mktemp)
log=$(mktemp)
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics > "$artifacts"
set +e
python3 scripts/run-tests.py "$artifacts" "$log"
status=$?
# Doc-tests (rustdoc builds them apart from the binaries above).
cargo test --workspace --locked --doc 2>&1 | tee -a "$log"
doc_status=${PIPESTATUS[0]}
set -e
if [ "$status" -eq 0 ]; then status=$doc_status; fi
# One closing line for the whole suite (each test binary prints its own).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
rm -f "$log" "$artifacts"

# Issue 5's propagation acceptance: 1,000 connected agents get a policy change, p99 ≤ 2 s.
echo "== policy propagation benchmark (1,000 agents)"
set +e
# --workspace: the same feature set as the suite above, so only the bench itself is built
# (dependencies carry no debug info, so proc-macros' dependencies build alike either way).
cargo test --workspace --locked --bench vigil-vault-policy-bench -- --agents 1000 --max-p99-ms 2000
bench_status=$?
set -e
if [ "$status" -eq 0 ]; then status=$bench_status; fi

# Issue 11's masking bench v2, one trial of each transition (the README has the 100-trial
# figures and their command): any frame or voice sample that leaks fails the run.
echo "== masking benchmark v2 (1 trial per transition)"
set +e
[ -x target/debug/vigil-mask-bench ] || cargo build --workspace --bins --locked
target/debug/vigil-mask-bench 1 --fail-on-leak
mask_status=$?
set -e
if [ "$status" -eq 0 ]; then status=$mask_status; fi
# Issue 14: the console in Debian's Chromium against a real vault (the suite built
# target/debug/vigil-vault above).
echo "== console browser tests (playwright-core, node --test)"
set +e
(cd ui && npm test)
console_status=$?
set -e
if [ "$status" -eq 0 ]; then status=$console_status; fi
exit "$status"
