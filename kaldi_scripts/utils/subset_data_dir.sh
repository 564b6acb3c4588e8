#!/usr/bin/env bash
# Kaldi's utils/subset_data_dir.sh interface on stnas's data-dir code (pipeline/data/datadir.py).
# Usage: see 'subset_data_dir.sh --help'.
exec python3 "$(dirname "$0")/_datadir.py" subset_data_dir "$@"
