#!/usr/bin/env bash
# Kaldi's utils/fix_data_dir.sh interface on stnas's data-dir code (pipeline/data/datadir.py).
# Usage: see 'fix_data_dir.sh --help'.
exec python3 "$(dirname "$0")/_datadir.py" fix_data_dir "$@"
