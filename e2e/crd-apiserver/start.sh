#!/usr/bin/env bash
# Starts etcd and the real CRD API server on free loopback ports, with their own CA and an admin client
# certificate, and writes DIR/kubeconfig. Prints "ready https://127.0.0.1:PORT" when it serves.
# usage: start.sh DIR        stop: kill $(cat DIR/pids)
set -euo pipefail
dir=$(mkdir -p "$1" && cd "$1" && pwd)
bin=$("$(dirname "$0")/build.sh")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
ec=$(free_port); ep=$(free_port); ap=$(free_port)
pki="$dir/pki"; mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=crd-apiserver-ca
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 30 -extfile server.ext
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin"
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 30 -extfile client.ext
) >/dev/null 2>&1
b64() { base64 -w0 < "$1"; }
cat > "$dir/kubeconfig" <<K
apiVersion: v1
kind: Config
clusters:
- name: crd-apiserver
  cluster: {server: "https://127.0.0.1:$ap", certificate-authority-data: $(b64 "$pki/ca.crt")}
users:
- name: admin
  user: {client-certificate-data: $(b64 "$pki/admin.crt"), client-key-data: $(b64 "$pki/admin.key")}
contexts:
- name: crd-apiserver
  context: {cluster: crd-apiserver, user: admin, namespace: default}
current-context: crd-apiserver
K
"$bin/etcd" --name crd --data-dir "$dir/etcd-data" --listen-client-urls "http://127.0.0.1:$ec" \
  --advertise-client-urls "http://127.0.0.1:$ec" --listen-peer-urls "http://127.0.0.1:$ep" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ep" --initial-cluster "crd=http://127.0.0.1:$ep" \
  >"$dir/etcd.log" 2>&1 &
echo $! > "$dir/pids"
"$bin/crdserver" --etcd-servers="http://127.0.0.1:$ec" --bind-address=127.0.0.1 --secure-port="$ap" \
  --tls-cert-file="$pki/server.crt" --tls-private-key-file="$pki/server.key" --client-ca-file="$pki/ca.crt" \
  --authentication-skip-lookup >"$dir/crdserver.log" 2>&1 &
echo $! >> "$dir/pids"
for _ in $(seq 1 150); do
  if [ "$(curl -s --cacert "$pki/ca.crt" "https://127.0.0.1:$ap/readyz" 2>/dev/null)" = ok ]; then
    echo "ready https://127.0.0.1:$ap"; exit 0
  fi
  sleep 0.2
done
echo "crd-apiserver did not become ready; see $dir/crdserver.log and $dir/etcd.log" >&2
kill $(cat "$dir/pids") 2>/dev/null || true
exit 1
