#!/bin/sh
# Installs hoop from this checkout: checks prerequisites, installs dependencies (npm ci), builds,
# and puts `hoop` on PATH. Safe to run again: every step is idempotent.
set -eu

cd "$(dirname "$0")"
say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# 1. Prerequisites.
command -v node >/dev/null 2>&1 || die "Node.js 20 or newer is required (https://nodejs.org); 'node' was not found"
command -v npm >/dev/null 2>&1 || die "npm is required; it ships with Node.js"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "Node.js >= 20 is required; found $(node -v)"
missing=""
for tool in python3 make g++; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
[ -z "$missing" ] || say "note: missing$missing; better-sqlite3 may need them to build if no prebuilt binary is available"

# 2. Dependencies, exactly as locked.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "==> installing dependencies (npm ci)"
  npm ci --no-fund --no-audit
else
  say "==> dependencies up to date"
fi

# 3. Build.
say "==> building"
npm run --silent build

# 4. Put hoop on PATH.
bin="$(pwd)/bin/run.js"
chmod +x "$bin"
if [ -n "${HOOP_INSTALL_DIR:-}" ]; then
  dir="$HOOP_INSTALL_DIR"
elif [ "$(id -u)" = 0 ] && [ -w /usr/local/bin ]; then
  dir=/usr/local/bin
else
  dir="$HOME/.local/bin"
fi
mkdir -p "$dir"
ln -sf "$bin" "$dir/hoop"
say "==> linked $dir/hoop -> $bin"
case ":$PATH:" in
  *":$dir:"*) ;;
  *) say "note: $dir is not on your PATH; add it:  export PATH=\"$dir:\$PATH\"" ;;
esac

say ""
say "hoop $(node "$bin" version | sed 's/^hoop //') is installed. Next:"
say "  hoop gateway --dev        # gateway + dev identity provider + embedded agent"
