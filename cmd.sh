# Job runners for the recipe (Kaldi's cmd.sh): each is put in front of an `stnas` command.
# Local by default (empty). Examples:
#   several GPUs on this machine (data-parallel training; prep and decode stay single):
#     export STNAS_CMD="torchrun --standalone --nproc_per_node 4 --no-python"
#   a Slurm cluster, one job per stage:
#     export STNAS_PREP_CMD="srun --cpus-per-task=16 --mem=32G"
#     export STNAS_CMD="srun --gres=gpu:4 --cpus-per-task=16 --mem=64G torchrun --standalone --nproc_per_node 4 --no-python"
#     export STNAS_DECODE_CMD="srun --cpus-per-task=16 --mem=32G"
#   or submit the whole recipe as one batch job: sbatch --gres=gpu:4 --wrap "./run.sh --corpus wsj ..."
prep_cmd=${STNAS_PREP_CMD:-}
train_cmd=${STNAS_CMD:-}
decode_cmd=${STNAS_DECODE_CMD:-$prep_cmd}
