#!/usr/bin/env bash
# stnas recipe: prep → warmup → search → retrain → decode → score, one stnas call per stage.
#
# Usage: ./run.sh [--corpus tts|wsj|swbd] [--stage N] [--stop-stage M] [--nj N] [--corpus-root DIR]
#   e.g. ./run.sh --corpus tts --stage 0 --stop-stage 0
#        ./run.sh --corpus wsj --corpus-root /export/corpora/LDC --nj 16
# Stages: 0 prep (the later stages join this script as they are delivered).
set -euo pipefail

corpus=tts
stage=0
stop_stage=100
nj=2
corpus_root=
hours=0.05

while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    --corpus-root) corpus_root=$2; shift 2 ;;
    --hours) hours=$2; shift 2 ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "$0: unknown option $1" >&2; sed -n 2,8p "$0" >&2; exit 1 ;;
  esac
done

cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [run.sh] $*"; }

data=data/$corpus
root_opt=()
[ -n "$corpus_root" ] && root_opt=(--corpus-root "$corpus_root")

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "stage 0: prep $corpus → $data"
  $train_cmd stnas prep --corpus "$corpus" --data-dir "$data" --nj "$nj" --hours "$hours" "${root_opt[@]}"
fi

log "done (stages $stage..$stop_stage)"
