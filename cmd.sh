# Job runners for the recipe (Kaldi's cmd.sh). Local by default; on a Slurm cluster set e.g.
#   export STNAS_CMD="srun --gres=gpu:1 --cpus-per-task=8 --mem=32G"
#   export STNAS_DECODE_CMD="srun --cpus-per-task=16 --mem=32G"
train_cmd=${STNAS_CMD:-}
decode_cmd=${STNAS_DECODE_CMD:-$train_cmd}
