#!/usr/bin/env bash
# Prepares a Vault or OpenBao server for Ephemera (run once, as a Vault admin):
#   - policy `ephemera-operator`: create per-attempt tokens through the token role, revoke them by
#     accessor, and manage only the per-Credential policies `ephemera-cred-*`;
#   - token role `ephemera-task`: orphan, non-renewable tokens that may carry only `ephemera-cred-*`
#     policies (so even the operator cannot mint a token with any other policy, its own included).
# With a file argument it also creates a token for the operator there (development; in a cluster use
# Kubernetes auth as the README shows).
# Needs BAO_ADDR (or VAULT_ADDR) and an admin token in BAO_TOKEN (or VAULT_TOKEN); BAO names the CLI.
set -euo pipefail
BAO=${BAO:-bao}
"$BAO" policy write ephemera-operator - >/dev/null <<'POLICY'
path "auth/token/create/ephemera-task" {
  capabilities = ["update"]
}
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}
path "sys/policies/acl/ephemera-cred-*" {
  capabilities = ["create", "read", "update", "delete"]
}
# The same policies through the older sys/policy API (which vaultrs uses).
path "sys/policy/ephemera-cred-*" {
  capabilities = ["create", "read", "update", "delete"]
}
POLICY
"$BAO" write auth/token/roles/ephemera-task \
  allowed_policies_glob="ephemera-cred-*" disallowed_policies="root,ephemera-operator" \
  orphan=true renewable=false token_explicit_max_ttl=24h token_type=service >/dev/null
if [ -n "${1:-}" ]; then
  umask 077
  "$BAO" token create -orphan -policy=ephemera-operator -period=24h -display-name=ephemera-operator -field=token >"$1"
fi
echo "Vault prepared for Ephemera (policy ephemera-operator, token role ephemera-task)"
