#!/usr/bin/env bash
# The README's first command: brings up a working trust domain on embedded
# defaults. State lives in .anchorage/ (a SoftHSM2 token, the datastore, the
# admin socket); delete that folder to start over with a new trust domain.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

TD=${ANCHORAGE_TRUST_DOMAIN:-example.org}
HOME_DIR=$PWD/.anchorage
umask 077
mkdir -p "$HOME_DIR/softhsm/tokens" "$HOME_DIR/data"
export SOFTHSM2_CONF=$HOME_DIR/softhsm/softhsm2.conf
if [ ! -f "$SOFTHSM2_CONF" ]; then
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
    "$HOME_DIR/softhsm/tokens" > "$SOFTHSM2_CONF"
  # A random PIN, readable only by you; the server reads it through pin_file.
  head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$HOME_DIR/softhsm/pin"
  softhsm2-util --init-token --free --label anchorage --pin "$(cat "$HOME_DIR/softhsm/pin")" \
    --so-pin "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >/dev/null
  echo "quickstart: created SoftHSM2 token 'anchorage' in $HOME_DIR/softhsm"
fi
if [ ! -f "$HOME_DIR/server.yaml" ]; then
  cat > "$HOME_DIR/server.yaml" <<YAML
trust_domain: $TD
data_dir: $HOME_DIR/data
admin_socket: $HOME_DIR/admin.sock
bind_address: 127.0.0.1:8081
key_manager:
  type: pkcs11
  module: /usr/lib/softhsm/libsofthsm2.so
  token_label: anchorage
  pin_file: $HOME_DIR/softhsm/pin
ca:
  ttl: 24h
  key_type: ec-p256
  root:
    type: self-signed
x509_svid_ttl: 1h
jwt_svid_ttl: 5m
YAML
fi

ANCHORAGE="node bin/anchorage.js"
$ANCHORAGE server run -c "$HOME_DIR/server.yaml" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do [ -S "$HOME_DIR/admin.sock" ] && break; kill -0 $SERVER 2>/dev/null || exit 1; sleep 0.1; done

echo
echo "quickstart: trust domain $TD is up (admin socket $HOME_DIR/admin.sock)"
$ANCHORAGE ca show --socket "$HOME_DIR/admin.sock"
$ANCHORAGE x509 mint --socket "$HOME_DIR/admin.sock" --spiffe-id "spiffe://$TD/demo" --out-dir "$HOME_DIR/demo"
openssl verify -CAfile "$HOME_DIR/demo/bundle.pem" -untrusted <(sed -n '/END CERT/,$p' "$HOME_DIR/demo/svid.pem" | tail -n +2) \
  <(sed -n '1,/END CERT/p' "$HOME_DIR/demo/svid.pem") >/dev/null && echo "quickstart: openssl verifies the demo SVID against the bundle"
echo "quickstart: JWT-SVID for audience demo:"
$ANCHORAGE jwt mint --socket "$HOME_DIR/admin.sock" --spiffe-id "spiffe://$TD/demo" --audience demo
echo
echo "quickstart: the server keeps running; try: node bin/anchorage.js bundle show --socket $HOME_DIR/admin.sock"
echo "quickstart: press Ctrl-C to stop"
wait $SERVER
