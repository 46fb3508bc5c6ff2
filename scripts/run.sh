#!/usr/bin/env bash
# Installs what is missing, builds the agent, and records this desktop for 30 seconds into a
# sealed spool, then prints where the segments are and how to verify and open them.
#
# Without a desktop session (no DISPLAY, no audio server: a server or a container), it starts
# the test desktop (Xvfb + PulseAudio) and records that instead.
#
# Settings: SECONDS_TO_RECORD (default 30), VIGIL_SPOOL, VIGIL_RECIPIENT (an age1… key; when
# unset a demo identity is created in ~/.local/share/vigil/demo-identity.txt so that you can
# open what was recorded: in production only the vault holds the identity).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --release --locked -p vigil-agent -p vigil-e2e

data="${XDG_DATA_HOME:-$HOME/.local/share}/vigil"
mkdir -p "$data"
spool="${VIGIL_SPOOL:-$data/spool}"
recipient="${VIGIL_RECIPIENT:-}"
if [[ -z "$recipient" ]]; then
  identity="$data/demo-identity.txt"
  [[ -f "$identity" ]] || age-keygen -o "$identity" 2>/dev/null
  recipient=$(grep -o 'age1[0-9a-z]*' "$identity" | head -n1)
fi

desk_pid=""
players=()
cleanup() {
  for p in "${players[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [[ -n "$desk_pid" ]]; then
    # Closing its stdin makes the test desktop stop (and reap) everything it started.
    eval "exec ${DESK[1]}>&-"
    wait "$desk_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if [[ -z "${DISPLAY:-}" ]] || ! pactl info >/dev/null 2>&1; then
  echo "No desktop session here: starting the test desktop (Xvfb + PulseAudio)."
  envfile=$(mktemp)
  coproc DESK { ./target/release/vigil-testdesk; }
  desk_pid=$DESK_PID
  while IFS= read -r line <&"${DESK[0]}"; do
    [[ "$line" == export* ]] && echo "$line" >> "$envfile"
    [[ "$line" == "# stop:"* ]] && break
  done
  # shellcheck disable=SC1090
  source "$envfile"
  rm -f "$envfile"
  # Something to hear and see: a tone as the caller, speech as the agent.
  tmp=$(mktemp -d)
  sox -n -r 48000 -c 1 "$tmp/caller.wav" synth 60 sine 440 vol 0.3
  espeak-ng -w "$tmp/agent.wav" "Thank you for calling. This call is recorded for quality and training."
  paplay -d caller "$tmp/caller.wav" &
  players+=($!)
  paplay -d micfeed "$tmp/agent.wav" &
  players+=($!)
fi

./target/release/vigil-agent record --for "${SECONDS_TO_RECORD:-30}" --spool "$spool" --recipient "$recipient"
if [[ -n "${identity:-}" ]]; then
  echo "Demo identity (opens the segments): $identity"
fi
