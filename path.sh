# Sourced by run.sh: puts the project's virtualenv and Kaldi-style helpers on PATH.
STNAS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH=$STNAS_ROOT/.venv/bin:$STNAS_ROOT/kaldi_scripts/utils:$PATH
export LC_ALL=C
export PYTHONUNBUFFERED=1
