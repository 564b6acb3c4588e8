#!/usr/bin/env bash
# Validate a Kaldi data dir against the contract stnas relies on (sorted, consistent, audio present).
# Usage: validate_data_dir.sh [--no-feats] [--no-audio] <data-dir>
#   e.g. validate_data_dir.sh data/tts/train_sp
set -euo pipefail
feats=True
audio=True
while [ $# -gt 1 ]; do
  case "$1" in
    --no-feats) feats=False; shift ;;
    --no-audio) audio=False; shift ;;
    *) echo "$0: unknown option $1" >&2; exit 1 ;;
  esac
done
[ $# -eq 1 ] || { sed -n 2,4p "$0" >&2; exit 1; }
python3 - "$1" "$feats" "$audio" <<'PY'
import sys
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError
d, feats, audio = sys.argv[1], sys.argv[2] == "True", sys.argv[3] == "True"
try:
    c = validate_data_dir(d, need_feats=feats, check_audio=audio)
except DataError as e:
    sys.exit(f"validate_data_dir.sh: {e}")
print(f"{d}: OK ({c['utts']} utterances, {c['speakers']} speakers)")
PY
