#!/usr/bin/env bash
# The GPU checks, one script (every step has a time limit: at most 8 min in all). Tried on a
# CPU-only machine it runs every step: the CUDA ones skip or fail saying why, the rest measure.
#   1. pytest -m gpu: every family's fast run on CUDA, DDP with NCCL on the available GPUs;
#   2. benchmarks/sbm_sampling.py (on CUDA: N = 10^7, goal <= 50 ms);
#   3. benchmarks/bp_batched.py (batched BP on CUDA vs the per-example CPU loop, goal >= 50x);
#   4. benchmarks/train_overhead.py --device cuda;
#   5. a timed trainer=gpu retraining of gnn_nc and unet_bp: EPOCHS epochs each, the full
#      experiment's time extrapolated from the measured epochs/s (goal <= 10 min each).
# Results go to $OUT (or gpu_results/): one .txt per check and summary.md.
# Packages the GPU machine lacks (hydra-core, omegaconf, wandb, hydra-submitit-launcher,
# submitit) are installed from the wheels in $ZOO_WHEELS when that folder exists.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_results}
mkdir -p "$out"
epochs=${EPOCHS:-3}
if [ -d "${ZOO_WHEELS:-}" ]; then
  pip install -q --no-index --find-links "$ZOO_WHEELS" hydra-core omegaconf wandb \
    hydra-submitit-launcher submitit >"$out/pip.txt" 2>&1
  pip install -q --no-deps --no-build-isolation -e . >>"$out/pip.txt" 2>&1
fi
python - >"$out/device.txt" 2>&1 <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0), "x", torch.cuda.device_count())
PY

step() {  # step <name> <timeout s> <command...>: run, keep its output and exit status
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  echo "| $name | $rc | $((SECONDS - t0)) s |" >>"$out/steps.md"
}
echo "| check | exit | wall |" >"$out/steps.md"
echo "|---|---|---|" >>"$out/steps.md"

step pytest_gpu 150 python -m pytest -m gpu tests/gpu -q -p no:cacheprovider
step sbm_sampling 60 python benchmarks/sbm_sampling.py --pyg-n 20000 --repeats 5
step bp_batched 45 python benchmarks/bp_batched.py
step train_overhead_cuda 60 python benchmarks/train_overhead.py --device cuda --repeats 3
step train_overhead_cuda_compiled 90 python benchmarks/train_overhead.py --device cuda --repeats 3 --compile
for name in gnn_nc unet_bp; do
  step "retrain_$name" 35 python recipes/train.py "experiment=$name" trainer=gpu \
    "trainer.max_epochs=$epochs" logger=csv callbacks.progress_bar=null \
    "hydra.run.dir=$out/run_$name" "export_dir=$out/run_$name/checkpoint"
done

python - "$out" "$epochs" >"$out/summary.md" <<'PY'
import re, sys
from pathlib import Path
import yaml
out, epochs = Path(sys.argv[1]), int(sys.argv[2])
print((out / "device.txt").read_text().strip(), "\n")
print((out / "steps.md").read_text())
for name in ("sbm_sampling", "bp_batched", "train_overhead_cuda", "train_overhead_cuda_compiled"):
    lines = [l for l in (out / f"{name}.txt").read_text().splitlines() if re.match(r"^\w+: ", l)]
    print(f"\n{name}:\n" + "\n".join(f"    {l}" for l in lines))
print("\nretraining on the GPU (fit time of the measured epochs, extrapolated):")
for name in ("gnn_nc", "unet_bp"):
    text = (out / f"retrain_{name}.txt").read_text()
    m = re.search(r"fit took ([\d.]+) s", text)
    full = yaml.safe_load(Path(f"recipes/configs/experiment/{name}.yaml").read_text())
    total = (full.get("trainer") or {}).get("max_epochs")
    if m and total:
        per = float(m.group(1)) / epochs
        print(f"    {name}: {per:.2f} s/epoch over {epochs} epochs; {total} epochs -> "
              f"{per * total / 60:.1f} min (goal <= 10 min)")
    else:
        print(f"    {name}: no fit time found (see retrain_{name}.txt)")
PY
cat "$out/summary.md"
