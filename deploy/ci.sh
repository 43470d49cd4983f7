#!/usr/bin/env bash
# CI for deploy/: validates the Kubernetes manifests against the Kubernetes schemas, then
# builds the container image and checks it serves /healthz where a container engine can run.
# Called by .ci/run; bounded (each slow step has its own timeout). Needs the venv of .ci/run
# ($VENV) and a built debug binary (target/debug/deliberate).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DELIBERATE_VENV:-$PWD/target/ci-venv}"
OUT="$PWD/target/deploy-ci"
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== deploy: policy copies in the kustomize base are the shipped policies"
for f in default.yaml secrets.yaml; do
  cmp "policies/$f" "deploy/kubernetes/base/policies/$f"
done
cmp policies/pii.yaml deploy/kubernetes/overlays/example/policies/pii.yaml

echo "== deploy: manifests against the Kubernetes schemas (PyPI kubernetes-validate)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0"
validate() { "$VENV/bin/kubernetes-validate" --strict --quiet "$@"; }
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  echo "rendering with $(kubectl version --client 2>/dev/null | head -1) (kubectl kustomize)"
  kubectl kustomize deploy/kubernetes/base >"$OUT/base.yaml"
  kubectl kustomize deploy/kubernetes/overlays/example >"$OUT/overlay.yaml"
  # 1.30: the oldest release whose schema has preStop.sleep, which the Deployment uses.
  for v in 1.30.0 1.37.0; do
    validate -k "$v" "$OUT/base.yaml" "$OUT/overlay.yaml"
  done
  echo "rendered base and overlay validate against Kubernetes 1.30 and 1.37"
else
  echo "no kubectl with kustomize: validating each manifest file as written (kustomizations, patches and generated ConfigMaps are not checked)"
  validate deploy/kubernetes/base/{deployment,service,hpa,pdb}.yaml \
    deploy/kubernetes/overlays/example/namespace.yaml
fi

echo "== deploy: container image"
skip() { echo "SKIPPED container image check: $*"; exit 0; }
if ! command -v buildah >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (timeout 120 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 300 \
      apt-get install -y -qq --no-install-recommends buildah podman crun busybox-static) \
      >"$OUT/apt.log" 2>&1 || skip "cannot install buildah/podman from Debian (see $OUT/apt.log)"
  else
    skip "no buildah, and not root to install it"
  fi
fi
command -v busybox >/dev/null || skip "no busybox (Debian busybox-static) for the local build image"
BIN=target/debug/deliberate
[ -x "$BIN" ] || timeout 900 cargo build --quiet --bin deliberate
# A storage of its own under target/, so no other image store on the machine is touched.
STORE=(--root "$OUT/storage" --runroot "$OUT/run" --storage-driver vfs)
B="timeout 300 buildah ${STORE[*]}"

# No registry is reachable: both base images of deploy/Dockerfile are made here.
# The build stage: a shell (busybox) and the binary CI already built, in /prebuilt.
mkdir -p "$OUT/build/rootfs/bin" "$OUT/build/rootfs/prebuilt"
cp "$(command -v busybox)" "$OUT/build/rootfs/bin/busybox"
for a in sh mkdir cp '['; do ln -sf busybox "$OUT/build/rootfs/bin/$a"; done
cp "$BIN" "$OUT/build/rootfs/prebuilt/deliberate"
printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n' >"$OUT/build/Containerfile"
# The runtime stage: what distroless/cc holds that the binary needs (glibc, libm, libgcc_s,
# the loader) and a nonroot user; no shell.
R="$OUT/runtime/rootfs"
mkdir -p "$R/etc" "$R/tmp"
for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
  mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"
done
echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$R/etc/passwd"
echo 'nonroot:x:65532:' >"$R/etc/group"
printf 'FROM scratch\nCOPY rootfs/ /\n' >"$OUT/runtime/Containerfile"
$B bud --quiet --isolation chroot -t localhost/deliberate-ci-build "$OUT/build" >/dev/null ||
  skip "buildah cannot build here"
$B bud --quiet --isolation chroot -t localhost/deliberate-ci-runtime "$OUT/runtime" >/dev/null
$B bud --quiet --isolation chroot --format docker -f deploy/Dockerfile \
  --build-arg RUST_IMAGE=localhost/deliberate-ci-build \
  --build-arg RUNTIME_IMAGE=localhost/deliberate-ci-runtime \
  -t localhost/deliberate:ci . >/dev/null
echo "built localhost/deliberate:ci from deploy/Dockerfile"
echo "user and health check: $($B inspect --format '{{.Docker.Config.User}} {{.Docker.Config.Healthcheck.Test}}' localhost/deliberate:ci)"

# Serve from the image. `podman run` needs to set the container's rlimits, which a machine
# without CAP_SYS_RESOURCE refuses ("setrlimit RLIMIT_NOFILE: Operation not permitted"); then
# the image's own filesystem, user and command run under buildah's chroot isolation instead
# (same binary, same files, the host's network).
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CTR=$($B from --quiet localhost/deliberate:ci)
PID=""
PODMAN_CTR=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  [ -n "$PODMAN_CTR" ] && podman "${STORE[@]}" rm -f "$PODMAN_CTR" >/dev/null 2>&1
  $B rm "$CTR" >/dev/null 2>&1
  wait 2>/dev/null
  rm -rf "$OUT/storage" "$OUT/run" 2>/dev/null || true
}
trap cleanup EXIT
if timeout 60 podman "${STORE[@]}" run --rm localhost/deliberate:ci --version >"$OUT/podman.log" 2>&1; then
  echo "podman runs containers here"
  PODMAN_CTR=$(timeout 60 podman "${STORE[@]}" run -d --rm -p "127.0.0.1:$PORT:8080" localhost/deliberate:ci)
else
  echo "podman cannot run a container here: $(tail -1 "$OUT/podman.log"); using buildah run --isolation chroot"
  timeout 60 buildah "${STORE[@]}" run --isolation chroot --user 65532:65532 "$CTR" -- \
    /usr/local/bin/deliberate serve --config /etc/deliberate/config.yaml --listen "127.0.0.1:$PORT" \
    >"$OUT/serve.log" 2>&1 &
  PID=$!
fi
for _ in $(seq 1 50); do
  if "$BIN" health --url "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
    echo "the image serves /healthz: $("$BIN" health --url "http://127.0.0.1:$PORT/healthz")"
    "$BIN" health --url "http://127.0.0.1:$PORT/readyz" >/dev/null
    echo "and is ready"
    exit 0
  fi
  sleep 0.2
done
echo "the image did not serve /healthz in 10 s"; cat "$OUT/serve.log" 2>/dev/null || true
exit 1
