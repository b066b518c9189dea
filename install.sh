#!/bin/sh
# Installs hoop from this checkout: checks prerequisites, installs dependencies (npm ci), builds,
# and puts `hoop` on PATH. Safe to run again: every step is idempotent (dependencies are only
# reinstalled when package-lock.json changed; the link is replaced, never duplicated).
#
# Environment: HOOP_INSTALL_DIR  where to link `hoop` (default /usr/local/bin as root, else ~/.local/bin)
set -eu

cd "$(dirname "$0")"
say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# 1. Prerequisites: report everything that is missing at once, with how to get it.
problems=""
problem() { problems="$problems
  - $*"; }
if ! command -v node >/dev/null 2>&1; then
  problem "Node.js 20 or newer: 'node' was not found (https://nodejs.org, or your package manager: apt-get install nodejs, brew install node@20)"
else
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || true)
  case "$major" in '' | *[!0-9]*) major=0 ;; esac
  if [ "$major" -lt 20 ]; then
    problem "Node.js 20 or newer: found $(node -v) at $(command -v node)"
  fi
fi
command -v npm >/dev/null 2>&1 || problem "npm: 'npm' was not found; it ships with Node.js (on Debian/Ubuntu: apt-get install npm)"
if [ -n "$problems" ]; then
  printf 'install.sh: cannot install hoop; missing:%s\n' "$problems" >&2
  exit 1
fi

# Optional tools: hoop installs without them, but say what they are for.
missing_build=""
for tool in python3 make g++; do command -v "$tool" >/dev/null 2>&1 || missing_build="$missing_build $tool"; done
[ -z "$missing_build" ] || say "note: not found:$missing_build. Only needed if npm finds no prebuilt binary for better-sqlite3 on this platform (apt-get install python3 make g++)."
command -v psql >/dev/null 2>&1 || say "note: psql (the PostgreSQL client) was not found; the dev-mode demo uses it (apt-get install postgresql-client, brew install libpq)."

# 2. Dependencies, exactly as locked.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "==> installing dependencies (npm ci)"
  npm ci --no-fund --no-audit || die "npm ci failed (see above). Check network access to the npm registry, then run ./install.sh again."
else
  say "==> dependencies up to date"
fi

# 3. Build.
say "==> building"
npm run --silent build || die "the TypeScript build failed (see above)"

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
mkdir -p "$dir" || die "cannot create $dir (set HOOP_INSTALL_DIR to a directory you can write)"
ln -sf "$bin" "$dir/hoop" || die "cannot link $dir/hoop (set HOOP_INSTALL_DIR to a directory you can write)"
say "==> linked $dir/hoop -> $bin"
hoop="hoop"
case ":$PATH:" in
  *":$dir:"*) ;;
  *)
    say "note: $dir is not on your PATH; add it to your shell profile:  export PATH=\"$dir:\$PATH\""
    hoop="$dir/hoop"
    ;;
esac

version=$(node "$bin" version --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{try{process.stdout.write(JSON.parse(s).version)}catch{process.stdout.write("?")}})')
say ""
say "hoop $version is installed. Next, try everything on this machine:"
say "  $hoop gateway --dev      # gateway, dev login, demo database and policy; it prints what to type next"
