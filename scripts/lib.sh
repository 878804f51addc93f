# Shared by the scripts: installing what is missing and PostgreSQL helpers. Sourced, not run.

# Installs Debian packages that are missing: as root directly, otherwise through sudo.
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local apt=(apt-get)
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      apt=(sudo apt-get)
    else
      echo "error: missing packages ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
      return 1
    fi
  fi
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null
}

ensure_toolchain() {
  command -v swift >/dev/null 2>&1 || { echo "error: swift is not on PATH (Swift 6.2 or later is needed)" >&2; return 1; }
  ensure_packages libargon2-dev postgresql postgresql-contrib openssl pkg-config
}

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

random_secret() {
  openssl rand -base64 32 | tr -d '/+=\n' | cut -c1-32
}
