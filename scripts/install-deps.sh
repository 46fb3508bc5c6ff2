#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that building Vigil and running its test desktop need.
# Idempotent: only missing packages are installed. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config clang libclang-dev libssl-dev
  # FFmpeg (ffmpeg-next binds these; the CLI is the benchmark reference and test oracle)
  libavcodec-dev libavformat-dev libavdevice-dev libavfilter-dev libswscale-dev
  libswresample-dev libavutil-dev ffmpeg
  # Wayland screen capture (vigil-capture feature `wayland`): the pipewire crate binds these
  libpipewire-0.3-dev libspa-0.2-dev
  # audio
  pulseaudio pulseaudio-utils libasound2-dev
  # test desktop
  xvfb x11-utils x11-xserver-utils xdotool imagemagick dbus dbus-x11 at-spi2-core chromium
  # a GTK3 window for the accessibility focus test (and the AT-SPI launcher's reaper script)
  python3 python3-gi gir1.2-gtk-3.0
  # the agent's device key in the OS keystore (Secret Service)
  gnome-keyring libsecret-tools
  # test media and oracles
  espeak-ng sox age multimon-ng tesseract-ocr
  # benchmark helpers
  procps time
  # the vault's storage tests start a PostgreSQL 15 server of their own (never the package's)
  postgresql
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust targets for the cross-platform `cargo check` of capture backends.
if command -v rustup >/dev/null; then
  for t in x86_64-pc-windows-gnu aarch64-apple-darwin; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t" >/dev/null
  done
fi

# The console (ui/): its npm packages, exactly as the lockfile says. Node 20 and npm come with
# the image; Debian's nodejs otherwise.
if ! command -v npm >/dev/null; then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
(cd "$(dirname "$0")/../ui" && npm ci --no-audit --no-fund --loglevel=error)

# The vault's storage tests start an S3 server over a folder. 0.17 needs rustc 1.96; 0.14.1
# builds here (a few minutes). Only if missing.
if ! command -v s3s-fs >/dev/null && [[ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]]; then
  echo "install-deps: cargo install s3s-fs" >&2
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi
