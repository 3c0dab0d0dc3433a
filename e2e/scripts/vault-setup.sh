#!/usr/bin/env bash
# Prepares a Vault or OpenBao server for Ephemera (run once, as a Vault admin; safe to re-run):
#   - the Transit secrets engine at `transit/` (Salesforce and GitHub App keys live there as
#     non-exportable keys: import each with vault-import-key.sh);
#   - policy `ephemera-operator`: create per-attempt tokens through the token role, look up and revoke
#     them by accessor, and (managed mode) write only the per-Credential policies `ephemera-cred-*`;
#   - token role `ephemera-task`: orphan, non-renewable tokens that may carry only `ephemera-cred-*`
#     policies (so even the operator cannot mint a token with any other policy, its own included).
# EPHEMERA_VAULT_POLICIES=external: the operator may only read the `ephemera-cred-*` policies, and a
# separate policy `ephemera-policy-sync` (for the identity that runs `ephemera-operator
# sync-vault-policies`) may write them; a compromised operator then cannot widen what a token grants.
# With a file argument it also creates a token for the operator there (development; in a cluster use
# Kubernetes auth as docs/credentials.md shows).
# Needs BAO_ADDR (or VAULT_ADDR) and an admin token in BAO_TOKEN (or VAULT_TOKEN); BAO names the CLI.
set -euo pipefail
BAO=${BAO:-bao}
MODE=${EPHEMERA_VAULT_POLICIES:-managed}
case "$MODE" in
  managed) POLICY_CAPS='["create", "read", "update", "delete"]' ;;
  external) POLICY_CAPS='["read"]' ;;
  *) echo "EPHEMERA_VAULT_POLICIES must be managed or external, not $MODE" >&2; exit 2 ;;
esac
if ! "$BAO" secrets list -format=json | grep -q '"transit/"'; then
  "$BAO" secrets enable transit >/dev/null
fi
"$BAO" policy write ephemera-operator - >/dev/null <<POLICY
path "auth/token/create/ephemera-task" {
  capabilities = ["update"]
}
# Revoking checks first that the accessor's token belongs to the attempt being ended.
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}
path "sys/policies/acl/ephemera-cred-*" {
  capabilities = $POLICY_CAPS
}
# The same policies through the older sys/policy API (which vaultrs uses).
path "sys/policy/ephemera-cred-*" {
  capabilities = $POLICY_CAPS
}
POLICY
"$BAO" policy write ephemera-policy-sync - >/dev/null <<'POLICY'
path "sys/policies/acl/ephemera-cred-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "sys/policy/ephemera-cred-*" {
  capabilities = ["create", "read", "update", "delete"]
}
POLICY
"$BAO" write auth/token/roles/ephemera-task \
  allowed_policies_glob="ephemera-cred-*" disallowed_policies="root,ephemera-operator,ephemera-policy-sync" \
  orphan=true renewable=false token_explicit_max_ttl=24h token_type=service >/dev/null
if [ -n "${1:-}" ]; then
  umask 077
  "$BAO" token create -orphan -policy=ephemera-operator -period=24h -display-name=ephemera-operator -field=token >"$1"
fi
echo "Vault prepared for Ephemera (policy ephemera-operator [$MODE policies], token role ephemera-task, transit/)"
