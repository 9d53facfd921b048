#!/usr/bin/env bash
# Installs what Anchorage needs on this machine, idempotently and quickly when
# everything is already there: Debian packages (softhsm2, opensc, openssl),
# npm packages, and the compiled dist/. Called by `npm start` and, with
# --test, by `npm test`, which also needs the real peers the tests run against:
# nginx, Prometheus (promtool), swtpm, tpm2-tools and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  say "Node.js 20 or newer is required (found $(node --version))"; exit 1
fi

# --- Debian packages -----------------------------------------------------------
need_pkgs=()
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || need_pkgs+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_pkgs+=(opensc)
command -v openssl >/dev/null || need_pkgs+=(openssl)
# Native addons (pkcs11js, better-sqlite3) compile with node-gyp.
command -v make >/dev/null && command -v g++ >/dev/null || need_pkgs+=(build-essential)
# The py-spiffe and pkilint interop checks make a venv with Debian's python3.
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then need_pkgs+=(python3-venv); fi
if [ "${1:-}" = "--test" ]; then
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
  # njs: examples/nginx/spiffe-id.js reads the client's SPIFFE ID for nginx.
  [ -e /usr/lib/nginx/modules/ngx_http_js_module.so ] || need_pkgs+=(libnginx-mod-http-js)
  command -v promtool >/dev/null && command -v prometheus >/dev/null || need_pkgs+=(prometheus)
  command -v swtpm >/dev/null && command -v swtpm_setup >/dev/null || need_pkgs+=(swtpm swtpm-tools)
  command -v tpm2_startup >/dev/null || need_pkgs+=(tpm2-tools)
  # The PostgreSQL datastore's tests run a throwaway cluster (initdb, pg_ctl).
  compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || need_pkgs+=(postgresql)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        say "missing packages: ${need_pkgs[*]}; install them with: sudo apt-get install ${need_pkgs[*]}"; exit 1
      fi
    fi
    say "installing ${need_pkgs[*]} (apt-get)"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    say "missing: ${need_pkgs[*]}; install SoftHSM2, OpenSC and OpenSSL with your package manager"; exit 1
  fi
fi

# --- npm packages ----------------------------------------------------------------
# Native addons build against the headers of the Node that runs them; nothing
# may download headers on these machines.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then
  export npm_config_nodedir=/usr
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# --- build -----------------------------------------------------------------------
# native/ecverify: the CSR signature check of the minting path (see its .c file for why).
# native/p11sign: C_SignInit + C_Sign off the event loop (see its .c file for why).
# `npm ci` builds them too (the package's install script); this catches later edits.
for name in ecverify p11sign; do
  addon=native/$name/build/Release/$name.node
  if [ ! -f "$addon" ] || [ native/$name/$name.c -nt "$addon" ] || [ native/$name/binding.gyp -nt "$addon" ] || [ native/napi-args.h -nt "$addon" ]; then
    say "building native/$name"
    npx --no-install node-gyp rebuild --directory native/$name --loglevel=error >&2
  fi
done
# -b: the client package (packages/client) first, then everything that imports it.
npx --no-install tsc -b tsconfig.json
