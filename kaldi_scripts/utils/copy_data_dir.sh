#!/usr/bin/env bash
# Kaldi's utils/copy_data_dir.sh interface on stnas's data-dir code (pipeline/data/datadir.py).
# Usage: see 'copy_data_dir.sh --help'.
exec python3 "$(dirname "$0")/_datadir.py" copy_data_dir "$@"
