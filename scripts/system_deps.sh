#!/usr/bin/env bash
# Debian packages the test suite needs: PostgreSQL (the shared index of the dataset
# service), Chromium (the web viewer's browser tests), FFmpeg (LeRobot's video decoding) and
# nginx (a static HTTP server with range requests). Installed once per machine;
# needs root (CI runs as root) or passwordless sudo.
set -euo pipefail

packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
# FFmpeg's shared libraries: LeRobot's video decoder (torchcodec) and encoder (the bridge tests).
command -v ffmpeg >/dev/null 2>&1 || packages+=(ffmpeg)
# A real HTTP server with range requests for the https:// dataset tests.
command -v nginx >/dev/null 2>&1 || packages+=(nginx-light)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "system_deps.sh: need root to install ${packages[*]} (apt-get)" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Debian packages: ${packages[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
