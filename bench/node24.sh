#!/usr/bin/env bash
# Installs Node 24 from the npm registry into bench/.node24 (once; git-ignored, the system Node is
# untouched) and prints the path of its binary, for `pnpm bench -- --node "$(bash bench/node24.sh)"`.
# npm's output goes to stderr so that stdout carries only the path.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.node24"
bin="$dir/node_modules/node/bin/node"
works() { [ -x "$bin" ] && [[ "$("$bin" -v 2>/dev/null)" == v24.* ]]; }
if ! works; then
  echo "node24.sh: installing node@24 into $dir" >&2
  npm i --no-save --no-audit --no-fund --prefix "$dir" node@24 >&2
fi
if ! works; then
  echo "node24.sh: $bin is missing or not Node 24 after npm install (did npm skip the node package's install script?)" >&2
  exit 1
fi
echo "$bin"
