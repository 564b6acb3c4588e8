#!/usr/bin/env bash
# Installs what stnas needs, and nothing that is already there.
# Used by `make install` and by the Dockerfile, so both environments are built the same way.
#
# Usage: tools/install.sh [--venv DIR] [--no-apt] [--torch-spec SPEC] [--torch-index URL]
#   --venv DIR          virtualenv to create/update (default: .venv)
#   --no-apt            do not apt-get the Debian packages (they must already be present)
#   --torch-spec SPEC   pip requirement for torch (default: torch==2.13.0)
#   --torch-index URL   extra pip index for torch wheels (e.g. a CPU-only or CUDA wheel index)
set -euo pipefail

venv=.venv
do_apt=true
torch_spec="torch==2.13.0"
torch_index="${TORCH_INDEX_URL:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) venv=$2; shift 2 ;;
    --no-apt) do_apt=false; shift ;;
    --torch-spec) torch_spec=$2; shift 2 ;;
    --torch-index) torch_index=$2; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "$0: unknown option $1" >&2; exit 1 ;;
  esac
done

# DESIGN §4: Debian packages. festvox voices give the tts corpus its festival speakers;
# pocketsphinx-testdata (BSD-2) holds the real recorded speech of the tests and bench/.
debs="sox sctk espeak-ng flite festival festlex-cmu festvox-kallpc16k festvox-kdlpc16k fortunes pocketsphinx-testdata g++ ninja-build python3-dev"

if $do_apt; then
  missing=""
  for p in $debs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "install.sh: apt-get installing:$missing"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends $missing
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "install.sh: creating virtualenv $venv"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

# torch first and pinned, so no dependency pulls a different build.
if ! "$py" -c "import torch" >/dev/null 2>&1; then
  "$py" -m pip install -q --upgrade pip
  if [ -n "$torch_index" ]; then
    "$py" -m pip install -q --extra-index-url "$torch_index" "$torch_spec"
  else
    "$py" -m pip install -q "$torch_spec"
  fi
fi

# The package itself (editable) with its dev extras; skipped when already importable and up to date.
stamp="$venv/.stnas-installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  "$py" -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
# The fused den forward-backward extension (C++, and CUDA when torch has it): compiled here,
# never at first use; ninja makes a rebuild without changes a no-op.
"$py" -m pipeline.loss.den_fb_ext
echo "install.sh: ready ($("$py" -c 'import torch; print("torch", torch.__version__)'))"
