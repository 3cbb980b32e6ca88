# Shared by scripts/serve, scripts/test and bench/run: source it, do not run it.
# Installs what werklabd needs from Debian's packages, and builds it.

WERKLAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages by purpose.
WERKLAB_PACKAGES_BUILD="gcc meson ninja-build pkg-config libjansson-dev libpq-dev uuid-dev libssl-dev libcurl4-openssl-dev python3-yaml"
WERKLAB_PACKAGES_RUN="postgresql-15 postgresql-client-15 curl python3"
WERKLAB_PACKAGES_TEST="libcmocka-dev python3-pytest python3-jwt python3-cryptography clang libclang-rt-14-dev"
# scripts/cluster (and tests/cluster, bench/cluster): nginx in front, openssl for its certificate.
WERKLAB_PACKAGES_CLUSTER="nginx openssl"
WERKLAB_PACKAGES_BENCH="wrk postgresql-contrib python3-jwt python3-cryptography"
# scripts/check-image: the base image from debootstrap, built with buildah, run with podman.
WERKLAB_PACKAGES_IMAGE="buildah podman runc debootstrap curl python3-yaml"

# werklab_packages PACKAGE...: installs the missing ones (as root), or says how and fails.
werklab_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "werklabd needs these Debian packages; install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    return 1
  fi
  echo "installing ${missing[*]}" >&2
  # Another install on the same machine holds apt's locks for a while: wait for it.
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >&2
}

# werklab_node: npm for the OpenAPI lint. A machine may have Node.js from elsewhere (with its
# own npm); Debian's nodejs and npm are installed only when there is no npm at all.
werklab_node() {
  command -v npm >/dev/null 2>&1 && return 0
  werklab_packages nodejs npm
}

# werklab_build DIR [MESON OPTION...]: configures DIR once, then builds it.
werklab_build() {
  local dir="$WERKLAB_ROOT/$1"
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$WERKLAB_ROOT" "$@" >&2
  fi
  ninja -C "$dir" >&2
}

# werklab_pg_dir NAME: a directory for a private cluster that the postgres user can reach:
# .local/NAME in the repository, or a directory under /var/tmp when the checkout is private.
werklab_pg_dir() {
  local dir="$WERKLAB_ROOT/.local/$1"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$WERKLAB_ROOT/.local"; then
    dir="/var/tmp/werklabd-$(echo "$WERKLAB_ROOT" | sha256sum | cut -c1-12)/$1"
    mkdir -p "$dir"
  fi
  echo "$dir"
}
