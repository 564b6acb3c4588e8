#!/usr/bin/env bash
# Builds the stnas image with podman from a Debian base bootstrapped here (nothing from Docker
# Hub), then runs the debug recipe (with no network) and the fast tests inside it, and prints
# the image size and the times. Not part of `make test` (it takes several minutes).
#
# Usage: sudo tools/docker_smoke.sh [--out FILE.md] [--work DIR] [--rebuild]
#   --out FILE   also write the report as markdown (e.g. bench/results/docker.md)
#   --work DIR   scratch dir for the base rootfs and podman's config [/var/tmp/stnas-docker]
#   --rebuild    bootstrap the base again and build without podman's layer cache
#
# Why it is set up this way (each was needed on the 2-core Debian 12 VM it was made on):
#   - rootful podman with runc: crun fails on that cgroup layout;
#   - explicit ulimits (nofile = the hard limit here, nproc 32768): podman's defaults are
#     refused; they live in a containers.conf chosen with CONTAINERS_CONF;
#   - the base is `debootstrap --variant=minbase bookworm` from the mirror apt uses here,
#     imported with `podman import`;
#   - the build mounts a pip.conf that points at the host's wheel directory and CA bundle, so
#     torch comes from the same wheel as on the host (set PIP_FIND_LINKS, PIP_CERT or
#     PIP_INDEX_URL to what your machine uses).
set -euo pipefail

out=""
work=/var/tmp/stnas-docker
rebuild=false
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --rebuild) rebuild=true; shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "$0: unknown option $1" >&2; exit 1 ;;
  esac
done
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (rootful podman)" >&2; exit 1; }

need=""
for p in podman runc debootstrap; do command -v "$p" >/dev/null || need="$need $p"; done
if [ -n "$need" ]; then
  echo "docker_smoke: apt-get installing:$need"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc debootstrap >/dev/null
fi
mkdir -p "$work"

# podman's settings for this machine
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
cat > "$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=${hard_nofile}:${hard_nofile}", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
if [ -x /usr/lib/podman/netavark ]; then
  printf '[network]\nnetwork_backend = "netavark"\n' >> "$work/containers.conf"
fi
export CONTAINERS_CONF=$work/containers.conf

# the mirror apt uses here (deb822 or one-line sources)
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

t0=$SECONDS
base=localhost/debian:bookworm
if $rebuild || ! podman image exists "$base"; then
  echo "docker_smoke: debootstrap bookworm from $mirror"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -5 "$work/debootstrap.log" >&2; exit 1; }
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" \
    > "$work/rootfs/etc/apt/sources.list"
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb
  tar -C "$work/rootfs" -c . | podman import - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi
t_base=$((SECONDS - t0))

# pip inside the build: the host's wheel directory and CA bundle
find_links=${PIP_FIND_LINKS:-$(pip config get global.find-links 2>/dev/null || true)}
cert=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
cert=${cert:-/etc/ssl/certs/ca-certificates.crt}
mounts=()
{
  echo "[global]"
  echo "disable-pip-version-check = true"
  echo "cert = /etc/stnas-build/ca.crt"
  if [ -n "$find_links" ] && [ -d "$find_links" ]; then
    echo "find-links = /opt/stnas-wheels"
  fi
  [ -n "${PIP_INDEX_URL:-}" ] && echo "index-url = $PIP_INDEX_URL"
} > "$work/pip.conf"
mounts+=(-v "$work/pip.conf:/etc/pip.conf:ro" -v "$cert:/etc/stnas-build/ca.crt:ro")
[ -n "$find_links" ] && [ -d "$find_links" ] && mounts+=(-v "$find_links:/opt/stnas-wheels:ro")

image=localhost/stnas:smoke
cache=()
$rebuild && cache=(--no-cache)
t0=$SECONDS
podman build "${cache[@]}" --network host "${mounts[@]}" --build-arg BASE="$base" \
  -t "$image" . 2>&1 | tee "$work/build.log" | grep -E '^(STEP|COMMIT|install.sh)' || true
[ "${PIPESTATUS[0]}" -eq 0 ] || { tail -20 "$work/build.log" >&2; exit 1; }
t_build=$((SECONDS - t0))
size=$(podman image inspect --format '{{.Size}}' "$image")
size_gb=$(awk -v s="$size" 'BEGIN {printf "%.2f", s / 1e9}')
torch=$(podman run --rm --network none "$image" python -c 'import torch; print(torch.__version__)')

echo "docker_smoke: debug recipe inside the image (no network)"
t0=$SECONDS
podman run --rm --network none "$image" \
  bash -c './run.sh --corpus tts --conf conf/debug --nj 2 2>&1 | tail -25' | tee "$work/recipe.log"
grep -q "done (stages" "$work/recipe.log" \
  || { echo "docker_smoke: the recipe did not finish" >&2; exit 1; }
t_recipe=$((SECONDS - t0))

echo "docker_smoke: fast tests inside the image (no network)"
t0=$SECONDS
set +e
podman run --rm --network none "$image" \
  python -m pytest tests -m "not slow" -q -p no:cacheprovider 2>&1 | tail -15 | tee "$work/tests.log"
rc=${PIPESTATUS[0]}
set -e
t_tests=$((SECONDS - t0))
summary=$(grep -E '[0-9]+ (passed|failed)' "$work/tests.log" | tail -1)

report=$(cat <<EOF
| step | result | wall time |
|---|---|---:|
| base image (\`debootstrap --variant=minbase bookworm\`, \`podman import\`) | \`$base\` | ${t_base} s$($rebuild || [ "$t_base" -gt 5 ] || echo ' (cached)') |
| \`podman build\` (Dockerfile: apt packages, venv, torch $torch, \`pip install -e .[dev]\`, den extension) | image $size_gb GB | ${t_build} s |
| \`./run.sh --corpus tts --conf conf/debug --nj 2\`, \`--network none\` | $(grep -o 'done (stages [0-9.]*)' "$work/recipe.log" | tail -1); the searched network's test %WER $(awk -F'|' '$3 ~ /test/ && $4 ~ /st / {gsub(/ /, "", $9); print $9}' "$work/recipe.log" | head -1) (debug size: 0.05 h, a few epochs) | ${t_recipe} s |
| \`pytest tests -m "not slow"\`, \`--network none\` | ${summary:-rc $rc} | ${t_tests} s |
EOF
)
echo
echo "$report"
if [ -n "$out" ]; then
  {
    echo "<!-- Written by: sudo tools/docker_smoke.sh --out $out (commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
    echo "     $(date -u +%Y-%m-%d), $(nproc) cores, podman $(podman --version | awk '{print $3}'), runc). -->"
    echo
    echo "# The stnas image, built and smoke-tested with podman"
    echo
    echo "$report"
  } > "$out"
fi
exit $rc
