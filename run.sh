#!/usr/bin/env bash
# stnas recipe: prep → warmup → search → retrain → decode → score, one stnas call per stage.
#
# Usage: ./run.sh [--corpus tts|wsj|swbd|kaldi] [--conf DIR] [--tag NAME] [--stage N] [--stop-stage M]
#                 [--nj N] [--corpus-root DIR] [--hours H] [--corpus-opt KEY=VALUE]...
#                 [--data DIR] [--exp DIR] [--results FILE] [--device cpu|cuda]
#                 (--results: RESULTS.md for tts, else next to the exp dir: exp/<corpus>/RESULTS.md)
#                 [--arch arch.json] [--resample RATE] [--g2p espeak|none] [--lm-arpa FILE]
#                 [--lm-text-filter auto|none|exact|near]
#   e.g. ./run.sh --corpus tts                       # the demo (conf/tts)
#        ./run.sh --corpus tts --conf conf/debug      # CI size
#        ./run.sh --corpus wsj --corpus-root /export/corpora/LDC --nj 16 --device cuda
#        ./run.sh --corpus swbd --corpus-root /export/corpora/LDC --arch exp/wsj/st/search/arch.json \
#                 --tag from_wsj                      # transfer: no warm-up/search, retrain that
#        ./run.sh --corpus kaldi --corpus-root data/mine_dirs   # your own data (conf/small)
#   --arch skips stages 1-2 and retrains the given architecture (searched on another corpus).
#   --corpus kaldi uses conf/small unless --conf is given: the demo's model size, for a few hours
#   of your own recordings on CPU. --resample, --g2p, --lm-arpa and --lm-text-filter go to
#   stnas prep (see stnas prep --help).
# Stages: 0 prep, 1 warmup, 2 search, 3 retrain, 4 decode, 5 score, 6 the same retrain/decode/
# score for the hand-designed TDNN-D of the space (conf/arch/tdnn_d_<space>.json), as a baseline.
# A finished stage is skipped while its inputs and options are unchanged; when they changed it
# is refused (the message says what changed): redo it with stnas <stage> --force.
set -euo pipefail

corpus=tts
stage=0
stop_stage=100
nj=2
corpus_root=
hours=
corpus_opts=()
conf=
tag=st
data=
exp=
results=
device=cpu
arch=
extra_prep=()

while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    --corpus-root) corpus_root=$2; shift 2 ;;
    --hours) hours=$2; shift 2 ;;
    --corpus-opt) corpus_opts+=(--corpus-opt "$2"); shift 2 ;;
    --conf) conf=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --resample|--g2p|--lm-arpa|--lm-text-filter) extra_prep+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "$0: unknown option $1" >&2; sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 1 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
. ./path.sh
. ./cmd.sh

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [run.sh] $*"; }

if [ -z "$conf" ]; then
  conf=conf/$corpus
  [ "$corpus" = kaldi ] && conf=conf/small
fi
if [ ! -f "$conf/retrain.yaml" ]; then
  echo "$0: no stage configs in '$conf' (give --conf conf/small for your own data, conf/wsj, conf/swbd, conf/debug or your own dir)" >&2
  exit 1
fi
if [ -n "$arch" ] && [ ! -f "$arch" ]; then
  echo "$0: --arch $arch: no such file" >&2
  exit 1
fi
data=${data:-data/$corpus}
exp=${exp:-exp/$corpus/$tag}
# the demo's table is the repository's RESULTS.md; other corpora get their own, next to exp
if [ -z "$results" ]; then
  results=RESULTS.md
  [ "$corpus" = tts ] || results=$(dirname "$exp")/RESULTS.md
fi
# prep options: $conf/prep.yaml (if any), then what is given here.
prep_opts=()
[ -f "$conf/prep.yaml" ] && prep_opts+=(--config "$conf/prep.yaml")
[ -n "$corpus_root" ] && prep_opts+=(--corpus-root "$corpus_root")
[ -n "$hours" ] && prep_opts+=(--hours "$hours")
prep_opts+=(${corpus_opts[@]+"${corpus_opts[@]}"} ${extra_prep[@]+"${extra_prep[@]}"})

# run_stage N NAME COMMAND...: run when N is inside --stage..--stop-stage. The stnas command
# itself skips a finished stage whose inputs and options are unchanged, and refuses (exit 1,
# naming what changed) one whose inputs or options changed.
run_stage() {
  local n=$1 name=$2; shift 2
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    log "stage $n: $name"
    if ! $train_cmd "$@"; then
      log "stage $n: $name failed or was refused (see above); to redo a finished stage whose" \
          "inputs or options changed: stnas $name --force ..."
      exit 1
    fi
  fi
}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "stage 0: prep $corpus → $data"
  $prep_cmd stnas prep --corpus "$corpus" --data-dir "$data" --nj "$nj" ${prep_opts[@]+"${prep_opts[@]}"}
fi

common=(--data-dir "$data" --exp-dir "$exp" --device "$device")
if [ -z "$arch" ]; then
  run_stage 1 warmup  stnas warmup  --config "$conf/warmup.yaml"  "${common[@]}"
  run_stage 2 search  stnas search  --config "$conf/search.yaml"  "${common[@]}"
  arch=$exp/search/arch.json
else
  log "stages 1-2 skipped: retraining the given architecture $arch"
fi
run_stage 3 retrain stnas retrain --config "$conf/retrain.yaml" "${common[@]}" --arch "$arch"

model=$exp/retrain/avg.pt
[ -f "$model" ] || model=$exp/retrain/best.pt
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: decode dev (every LM weight and word penalty), test at the pair dev chooses: $model"
  $decode_cmd stnas decode --model "$model" --data-dir "$data" --sets dev,test --nj "$nj" \
    --device "$device"
fi
if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: score (LM weight and word penalty chosen on dev)"
  stnas score --model-dir "$exp/retrain" --data-dir "$data" --dev dev --test test \
    --arch-name "$tag" --results "$results"
fi
if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  space=$(stnas show config "$conf/search.yaml" --key space)
  baseline=${exp}_tdnn_d
  log "stage 6: baseline: retrain conf/arch/tdnn_d_$space.json the same way → $baseline"
  $train_cmd stnas retrain --config "$conf/retrain.yaml" --data-dir "$data" --exp-dir "$baseline" \
    --arch "conf/arch/tdnn_d_$space.json" --device "$device"
  bmodel=$baseline/retrain/avg.pt
  [ -f "$bmodel" ] || bmodel=$baseline/retrain/best.pt
  $decode_cmd stnas decode --model "$bmodel" --data-dir "$data" --sets dev,test --nj "$nj" \
    --device "$device"
  stnas score --model-dir "$baseline/retrain" --data-dir "$data" --dev dev --test test \
    --arch-name tdnn_d --results "$results"
fi
if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 5 ]; then
  log "architecture: $(stnas show arch "$arch" --data-dir "$data" --summary)"
  alphas=$exp/search/alphas.png
  [ -f "$alphas" ] || alphas="(no search here)"
  log "files: $arch $alphas $exp/retrain/curves.png $exp/retrain/decode_test_tg/scoring/"
  sed -n '/stnas:results:begin/,/stnas:results:end/p' "$results" | grep '^|'
fi

# Stage times, from the stage.json every stage writes (a skipped stage shows its first run).
stnas show times "$data" "$exp" "${exp}_tdnn_d" || true
last=$stop_stage
[ "$last" -gt 6 ] && last=6
log "done (stages $stage..$last)"
