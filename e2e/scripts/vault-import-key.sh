#!/usr/bin/env bash
# Imports a Salesforce connected-app or GitHub App private key into Vault Transit as a
# non-exportable signing key (run once per key, as a Vault admin), so the key never leaves Vault:
# workers ask Transit to sign each JWT assertion (RS256 = sha2-256 + PKCS#1 v1.5).
#   vault-import-key.sh KEY_NAME PRIVATE_KEY.pem [TRANSIT_MOUNT]
# Then reference it from the Credential: `signingKey: {name: KEY_NAME, mount: TRANSIT_MOUNT}`, and
# delete `private_key` from the Credential's KV secret (workers refuse a Credential that keeps both).
# Uses Transit's key wrapping (BYOK: the key travels wrapped with Vault's own wrapping key). Needs
# openssl, BAO_ADDR (or VAULT_ADDR) and an admin token in BAO_TOKEN (or VAULT_TOKEN); BAO names the CLI.
set -euo pipefail
BAO=${BAO:-bao}
name=${1:?usage: vault-import-key.sh KEY_NAME PRIVATE_KEY.pem [TRANSIT_MOUNT]}
pem=${2:?usage: vault-import-key.sh KEY_NAME PRIVATE_KEY.pem [TRANSIT_MOUNT]}
mount=${3:-transit}
bits=$(openssl pkey -in "$pem" -noout -text 2>/dev/null | sed -n 's/.*Private-Key: (\([0-9]*\) bit.*/\1/p')
case "$bits" in
  2048|3072|4096) ;;
  *) echo "$pem is not an RSA private key of 2048, 3072 or 4096 bits" >&2; exit 2 ;;
esac
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Transit imports PKCS#8 DER, base64-encoded.
openssl pkcs8 -topk8 -nocrypt -in "$pem" -outform DER | base64 -w0 >"$tmp/key"
"$BAO" transit import "$mount/keys/$name" "@$tmp/key" type="rsa-$bits" exportable=false \
  allow_plaintext_backup=false >/dev/null
echo "imported $pem into $mount/keys/$name (rsa-$bits, not exportable)"
