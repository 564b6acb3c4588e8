#!/usr/bin/env bash
# Kaldi's utils/combine_data.sh interface on stnas's data-dir code (pipeline/data/datadir.py).
# Usage: see 'combine_data.sh --help'.
exec python3 "$(dirname "$0")/_datadir.py" combine_data "$@"
