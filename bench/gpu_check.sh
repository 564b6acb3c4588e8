#!/usr/bin/env bash
# The GPU check, one prepared script for the day a GPU is lent (about 6 minutes on one GPU):
#   0. build the fused den forward-backward extension with its CUDA kernels (nvcc);
#   1. CUDA tests: CTC-CRF loss and gradient on CUDA against the CPU (pytest -m gpu);
#   2. DDP with one GPU: a NCCL group, stnas's collectives on CPU-held values (the rule the CPU
#      test emulates), and a 1-process torchrun of a training step's all-reduce;
#   3. ST / DARTS / SNAS step time and peak memory (bench/nas_cost.py --device cuda);
#   4. CTC-CRF's share of a WSJ-size step (bench/ctc_crf.py --device cuda);
#   5. frames/s of a paper-size retrain step (TDNN-D of the wsj space, B 128, float32 and bf16).
# Writes bench/results/gpu.md (and nas_cost_gpu.md, ctc_crf_gpu.md); commit them.
# Usage: bash bench/gpu_check.sh [PYTHON]   (a Python with CUDA torch and stnas's requirements;
#        on a bare machine install the wheels first, see the device tool's README)
set -uo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
out=bench/results/gpu.md
mkdir -p bench/results
section() { printf '\n## %s\n\n```\n' "$1" >>"$out"; }
endsection() { printf '```\n' >>"$out"; }

{
  echo "# GPU check"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' 2>&1
  echo '```'
} >"$out"

section "0. Build the fused den forward-backward extension with its CUDA kernels"
timeout 400 "$py" -m pipeline.loss.den_fb_ext 2>&1 | tail -5 >>"$out"
endsection

section "1. CUDA tests (loss and gradient vs CPU; the fused CUDA kernels vs CPU in float64)"
timeout 300 "$py" -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tail -5 >>"$out"
endsection

section "2. DDP with one GPU (NCCL)"
timeout 120 "$py" - >>"$out" 2>&1 <<'PY'
import os, torch, torch.distributed as dist
os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                  MASTER_PORT="29533")  # what torchrun --nproc_per_node 1 sets
from pipeline.train.distributed import backend_for, comm_device, init_distributed, to_comm_device
torch.cuda.set_device(0)
dist.init_process_group(backend_for(torch.device("cuda", 0)), rank=0, world_size=1)
info = init_distributed("cuda")          # joins nothing more; sets the comm device
print("backend", dist.get_backend(), "comm device", comm_device(), "rank", info.rank)
x = to_comm_device(torch.arange(4.0))    # a CPU-held value, as many stnas values are
dist.all_reduce(x)                       # NCCL: must be a CUDA tensor
print("all_reduce on", x.device, x.tolist())
dist.destroy_process_group()
print("ok: a NCCL group and stnas's collective placement")
PY
endsection

section "3. NAS step cost (ST / DARTS / SNAS vs a single model)"
timeout 600 "$py" bench/nas_cost.py --device cuda 2>&1 | tail -25 >>"$out"
endsection

section "4. CTC-CRF share of a step"
timeout 600 "$py" bench/ctc_crf.py --device cuda 2>&1 | tail -20 >>"$out"
endsection

section "5. Paper-size retrain step (TDNN-D wsj, K 72, B 128 x 1000 frames)"
timeout 300 "$py" - >>"$out" 2>&1 <<'PY'
import time, torch
from pipeline.nas.arch import Arch
from pipeline.lang.den_graph import compose_den_fst, den_graph_from_fst
from pipeline.lang.phone_lm import estimate_phone_lm, lm_to_fst
from pipeline.loss.ctc_crf import CtcCrfLoss
from bench.ctc_crf import wsj_size_sequences
K, seqs = 72, wsj_size_sequences()
graph = den_graph_from_fst(compose_den_fst(K, lm_to_fst(estimate_phone_lm(seqs, K, order=4, max_extra_states=1000))), K)
dev = torch.device("cuda")
net = Arch.from_json("conf/arch/tdnn_d_wsj.json").build(K).to(dev)
loss_fn = CtcCrfLoss(graph, lamb=0.01).to(dev)
opt = torch.optim.Adam(net.parameters(), 1e-3)
B, T = 128, 1000
x = torch.randn(B, T, 120, device=dev); lengths = torch.full((B,), T, device=dev)
labels = torch.randint(1, K, (B, 100), device=dev); ll = torch.full((B,), 100, device=dev)
for dtype in (None, torch.bfloat16):
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            lp, n = net(x, lengths)
        out = loss_fn(lp.float(), n, labels, ll)
        out.loss.backward(); opt.step()
    for _ in range(3): step()
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); t = time.perf_counter()
    for _ in range(10): step()
    torch.cuda.synchronize(); dt = (time.perf_counter() - t) / 10
    print(f"{'bf16 autocast' if dtype else 'float32'}: {dt * 1e3:.1f} ms/step, "
          f"{B * T / dt:,.0f} input frames/s, peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
PY
endsection

[ -f bench/results/nas_cost_gpu.md ] && { echo; echo "Tables: nas_cost_gpu.md, ctc_crf_gpu.md."; } >>"$out"
cat "$out"
