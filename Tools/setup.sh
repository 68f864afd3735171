#!/usr/bin/env bash
# Installs the system libraries the package links: GSL (libgsl-dev) for the
# library and MPFR (libmpfr-dev) for the test oracle. Uses apt-get where a
# library is missing; says exactly what to install when it cannot.
set -euo pipefail

missing=()
pkg-config --exists gsl 2>/dev/null || missing+=(libgsl-dev)
pkg-config --exists mpfr 2>/dev/null || missing+=(libmpfr-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: missing ${missing[*]}; install them with your package manager (GSL and MPFR development files, and pkg-config)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
  else
    echo "setup: missing ${missing[*]}; not root: run 'apt-get update && apt-get install -y ${missing[*]}' as root" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "setup: installing ${missing[*]} with apt-get" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
