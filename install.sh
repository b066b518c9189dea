#!/bin/sh
# Installs hoop from this checkout: checks prerequisites, installs dependencies (npm ci), builds,
# and puts `hoop` on PATH. Safe to run again: every step is idempotent (dependencies are only
# reinstalled when package-lock.json changed; the link is replaced, never duplicated).
#
# Slow steps print what they do and a progress line every 15 s; their output goes to a log file.
# When npm ci fails, the log is read to name the cause (Node's headers for a native build, build
# tools, the registry, disk space) rather than guessing.
#
# Environment:
#   HOOP_INSTALL_DIR    where to link `hoop` (default /usr/local/bin as root, else ~/.local/bin)
#   npm_config_nodedir  where Node's headers are (prefix holding include/node/node.h); found
#                       automatically next to `node` when neither this nor npm's `nodedir` is set
set -eu

cd "$(dirname "$0")"
started=$(date +%s)
say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
since() { echo $(($(date +%s) - $1)); }

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
[ -z "$missing_build" ] || say "note: not found:$missing_build. Only needed if npm can download no prebuilt binary for better-sqlite3 (apt-get install python3 make g++)."
command -v psql >/dev/null 2>&1 || say "note: psql (the PostgreSQL client) was not found; the dev-mode demo uses it (apt-get install postgresql-client, brew install libpq)."

# Node's headers. When better-sqlite3's prebuilt binary cannot be downloaded (github.com out of
# reach), npm builds it, and node-gyp then downloads Node's headers from nodejs.org unless npm's
# `nodedir` points at a local copy. Many installs have one next to `node` (Debian/NodeSource:
# /usr/include/node; nvm and the official tarballs: <prefix>/include/node): use it.
node_version=$(node -p 'process.versions.node')
use_local_headers() {
  nodedir_set=${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}
  [ "$nodedir_set" != undefined ] || nodedir_set=""
  [ -z "$nodedir_set" ] || return 0
  node_prefix=$(node -p 'require("path").resolve(require("fs").realpathSync(process.execPath), "..", "..")')
  for prefix in "$node_prefix" /usr /usr/local; do
    h="$prefix/include/node"
    [ -f "$h/node.h" ] && [ -f "$h/common.gypi" ] && [ -f "$h/node_version.h" ] || continue
    hmajor=$(sed -n 's/^#define NODE_MAJOR_VERSION \([0-9]*\).*/\1/p' "$h/node_version.h")
    if [ "$hmajor" = "${node_version%%.*}" ]; then
      npm_config_nodedir=$prefix
      export npm_config_nodedir
      say "==> native builds use Node's headers in $prefix/include/node (npm_config_nodedir=$prefix)"
      return 0
    fi
  done
}

# Runs a slow step in the background with its output in $log, printing a progress line every 15 s.
log=$(mktemp "${TMPDIR:-/tmp}/hoop-install.XXXXXX")
step_pid=""
trap '[ -z "$step_pid" ] || kill "$step_pid" 2>/dev/null; exit 130' INT TERM
slow() {
  what=$1
  shift
  t0=$(date +%s)
  say "==> $what"
  "$@" >"$log" 2>&1 &
  step_pid=$!
  n=0
  while kill -0 "$step_pid" 2>/dev/null; do
    sleep 1
    n=$((n + 1))
    if [ $((n % 15)) -eq 0 ] && kill -0 "$step_pid" 2>/dev/null; then
      last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-100)
      say "    ... $(since "$t0") s${last:+: $last}"
    fi
  done
  if wait "$step_pid"; then
    step_pid=""
    say "    done in $(since "$t0") s"
    return 0
  else
    rc=$?
    step_pid=""
    return "$rc"
  fi
}

# What made npm ci fail, from its output: the first cause that matches, most specific first.
npm_failure() {
  registry=$(npm config get registry 2>/dev/null || echo 'the npm registry')
  if grep -q 'gyp http GET https://nodejs.org/.*headers' "$log" && grep -q 'gyp ERR!' "$log"; then
    github=$(sed -n 's/.*prebuild-install warn install \(.*\)/\1/p' "$log" | head -n 1)
    cat <<EOF
the native build of better-sqlite3 needs Node's headers, and none were found here.
  npm could not download a prebuilt better-sqlite3 binary (${github:-see the log}), so it built one from
  source, and node-gyp could not download Node $node_version's headers from nodejs.org. The registry
  itself was reachable. Either
  - install Node's headers on this machine (Debian/Ubuntu: they come with NodeSource's nodejs package
    in /usr/include/node; the official tarballs and nvm keep them in <prefix>/include/node) and run
    install.sh again: it finds them next to \`node\`; or
  - point npm at them: npm_config_nodedir=/path/to/prefix sh install.sh (the prefix that holds
    include/node/node.h); or
  - let node-gyp reach https://nodejs.org, or npm reach github.com for the prebuilt binary.
EOF
  elif grep -q 'gyp ERR! find Python\|Could not find any Python' "$log"; then
    say "building better-sqlite3 needs Python 3, which node-gyp did not find (apt-get install python3)."
  elif grep -q 'make: not found\|not found: make\|g++: not found\|c++: not found\|No such file or directory.*\(make\|g++\|c++\)' "$log"; then
    say "building better-sqlite3 needs a C++ toolchain (apt-get install make g++, or xcode-select --install)."
  elif grep -q 'ENOSPC' "$log"; then
    say "the disk is full (ENOSPC); free some space and run install.sh again."
  elif grep -q 'EACCES\|EPERM' "$log"; then
    say "npm was refused permission to write (EACCES/EPERM); run install.sh as the owner of $(pwd)."
  elif grep -q 'npm error code \(ENOTFOUND\|ECONNREFUSED\|ECONNRESET\|ETIMEDOUT\|EAI_AGAIN\|E401\|E403\|E5[0-9][0-9]\|CERT\|UNABLE_TO\|SELF_SIGNED\)' "$log"; then
    code=$(sed -n 's/^npm error code \(.*\)/\1/p' "$log" | head -n 1)
    say "npm could not download packages from $registry ($code): check network access, a proxy (HTTPS_PROXY) or npm's registry setting."
  else
    say "npm ci failed for a reason install.sh does not recognise; the end of its output is above."
  fi
}

# 2. Dependencies, exactly as locked.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  use_local_headers
  if ! slow "installing dependencies (npm ci: about 300 packages, 58 MB of them PostgreSQL for the dev-mode demo database; a minute or two on a fresh machine)" \
    npm ci --no-fund --no-audit --foreground-scripts; then
    say "---- last lines of npm's output ($log) ----" >&2
    tail -n 25 "$log" >&2
    say "----" >&2
    die "npm ci failed: $(npm_failure)"
  fi
else
  say "==> dependencies up to date"
fi

# 3. Build.
if ! slow "building (TypeScript)" npm run --silent build; then
  tail -n 40 "$log" >&2
  die "the TypeScript build failed (see above; full output in $log)"
fi
rm -f "$log"

# 4. Put hoop on PATH, saying so when that replaces a hoop that pointed elsewhere.
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
if [ -L "$dir/hoop" ]; then
  old=$(readlink "$dir/hoop")
  [ "$old" = "$bin" ] || say "note: replacing $dir/hoop, which pointed to $old"
elif [ -e "$dir/hoop" ]; then
  say "note: replacing $dir/hoop (a file, not a link to a checkout)"
fi
ln -sf "$bin" "$dir/hoop" || die "cannot link $dir/hoop (set HOOP_INSTALL_DIR to a directory you can write)"
say "==> linked $dir/hoop -> $bin"
hoop="hoop"
case ":$PATH:" in
  *":$dir:"*)
    first=$(command -v hoop 2>/dev/null || true)
    if [ -n "$first" ] && [ "$first" != "$dir/hoop" ]; then
      target=$first
      [ ! -L "$first" ] || target="$first -> $(readlink "$first")"
      say "warning: \`hoop\` still runs $target, which comes before $dir on your PATH; remove it, or put $dir first."
      hoop="$dir/hoop"
    fi
    ;;
  *)
    say "note: $dir is not on your PATH; add it to your shell profile:  export PATH=\"$dir:\$PATH\""
    hoop="$dir/hoop"
    ;;
esac

version=$(node "$bin" version --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{try{process.stdout.write(JSON.parse(s).version)}catch{process.stdout.write("?")}})')
say ""
say "hoop $version is installed ($(since "$started") s). Next, try everything on this machine:"
say "  $hoop gateway --dev      # gateway, dev login, demo database and policy; it prints what to type next"
