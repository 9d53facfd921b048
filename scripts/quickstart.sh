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
log_format: text
YAML
fi

ANCHORAGE="node bin/anchorage.js"
$ANCHORAGE server run -c "$HOME_DIR/server.yaml" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM
# A socket file may be left from an earlier run that was killed: wait until one accepts.
live() { node -e 'require("net").connect(process.argv[1]).on("connect", () => process.exit(0)).on("error", () => process.exit(1))' "$1"; }
for _ in $(seq 1 150); do live "$HOME_DIR/admin.sock" && break; kill -0 $SERVER 2>/dev/null || exit 1; sleep 0.2; done

echo
echo "quickstart: trust domain $TD is up (admin socket $HOME_DIR/admin.sock)"
$ANCHORAGE ca show --socket "$HOME_DIR/admin.sock"
$ANCHORAGE x509 mint --socket "$HOME_DIR/admin.sock" --spiffe-id "spiffe://$TD/demo" --out-dir "$HOME_DIR/demo"
openssl verify -CAfile "$HOME_DIR/demo/bundle.pem" -untrusted <(sed -n '/END CERT/,$p' "$HOME_DIR/demo/svid.pem" | tail -n +2) \
  <(sed -n '1,/END CERT/p' "$HOME_DIR/demo/svid.pem") >/dev/null && echo "quickstart: openssl verifies the demo SVID against the bundle"

# The node agent. Its join token names a node alias, so any agent attested
# with such a token may mint for entries parented by the alias; a rerun that
# needs a new token keeps the same entries.
NODE_ID="spiffe://$TD/quickstart/node"
SOCKET="$HOME_DIR/public/api.sock"
$ANCHORAGE bundle show --socket "$HOME_DIR/admin.sock" --format pem > "$HOME_DIR/bundle.pem"
TOKEN=$($ANCHORAGE token create --socket "$HOME_DIR/admin.sock" --spiffe-id "$NODE_ID" --ttl 10m --json | node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).token)')
cat > "$HOME_DIR/agent.yaml" <<YAML
trust_domain: $TD
server_address: 127.0.0.1:8081
data_dir: $HOME_DIR/agent
socket_path: $SOCKET
join_token: $TOKEN
trust_bundle_file: $HOME_DIR/bundle.pem
log_format: text
YAML
$ANCHORAGE agent run -c "$HOME_DIR/agent.yaml" &
AGENT=$!
trap 'kill ${DEMO:-} $AGENT $SERVER 2>/dev/null; wait ${DEMO:-} $AGENT $SERVER 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 150); do live "$SOCKET" && break; kill -0 $AGENT 2>/dev/null || exit 1; sleep 0.2; done
echo "quickstart: agent is up; Workload API at unix://$SOCKET"

# An entry for whoever runs this script, with a short X509-SVID lifetime so
# that rotations show within a minute or two.
if ! $ANCHORAGE entry list --socket "$HOME_DIR/admin.sock" --spiffe-id "spiffe://$TD/demo-workload" --json | grep -q '"id"'; then
  $ANCHORAGE entry create --socket "$HOME_DIR/admin.sock" --spiffe-id "spiffe://$TD/demo-workload" --parent-id "$NODE_ID" \
    --selector "unix:uid:$(id -u)" --x509-ttl 2m >/dev/null
fi
echo "quickstart: entry spiffe://$TD/demo-workload for unix:uid:$(id -u)"
echo "quickstart: JWT-SVID for audience demo (minted by the server):"
$ANCHORAGE jwt mint --socket "$HOME_DIR/admin.sock" --spiffe-id "spiffe://$TD/demo" --audience demo
echo
echo "quickstart: the demo workload prints its identity at each rotation (about every minute); Ctrl-C stops everything"
SPIFFE_ENDPOINT_SOCKET="unix://$SOCKET" node dist/examples/demo-workload.js &
DEMO=$!
wait $DEMO
