# Job runner for the recipe. Local by default; on a Slurm cluster set STNAS_CMD, e.g.
#   export STNAS_CMD="srun --gres=gpu:1 --cpus-per-task=8 --mem=32G"
train_cmd=${STNAS_CMD:-}
