#!/usr/bin/env bash
# README's GPU figures ("Speed and memory"), measured on the CUDA machine this runs on:
#   bash scripts/benchmark_gpu.sh [OUT_DIR] [DEMO_DIR]
# OUT_DIR (default docs/benchmarks) receives cuda_*.json. DEMO_DIR (default .) is a folder where `make demo`
# ran (demo_output/ and experiments/ in it): its test set is restored in float32, under bf16 autocast
# (val.amp) and under bf16 + torch.compile (val.compile) to compare PSNR; skipped when there is none.
# Each measurement runs in its own process; one that fails is reported and the next one runs.
set -uo pipefail
out=$(realpath -m "${1:-docs/benchmarks}")
demo=$(realpath -m "${2:-.}")
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
mkdir -p "$out"
bench() { name=$1; shift; echo "== $name: $*"; $python "$repo/scripts/benchmark.py" --device cuda --warmup 3 \
    --repeat 10 --json "$out/cuda_$name.json" "$@" || echo "== $name FAILED"; }

# Inference, 1024x1024 whole image, default network: float32 eager, bf16 autocast, bf16 + torch.compile of
# the whole network and of its blocks and D-GDMs (compilation is in the first run, not in the median).
bench infer1024_fp32 --skip-train --infer-size 1024
bench infer1024_bf16 --skip-train --infer-size 1024 --amp bf16
bench infer1024_bf16_compile --skip-train --infer-size 1024 --amp bf16 --compile
bench infer1024_bf16_compile_regions --skip-train --infer-size 1024 --amp bf16 --compile --compile-regions

# PSNR of the demo network on the demo test set in the same three settings.
if [ -d "$demo/demo_output/datasets" ]; then
    for setting in fp32:none:false bf16:bf16:false bf16_compile:bf16:true; do
        IFS=: read -r name amp compile <<<"$setting"
        echo "== demo test set, $name"
        (cd "$demo" && $python -m vlunet_basicsr_cli test -opt "$repo/options/demo/test_vlunet_demo.yml" \
            --force_yml num_gpu=1 val:amp=$amp val:compile=$compile val:save_img=false name=demo_speed_$name \
            >/dev/null 2>&1) || echo "== demo test set, $name FAILED"
    done
    $python - "$demo/results" "$out/cuda_demo_psnr.json" <<'EOF'
import json, sys
results, target = sys.argv[1], sys.argv[2]
psnr = {name: {task: values['psnr'] for task, values in json.load(open(f'{results}/demo_speed_{name}/metrics.json')).items()}
        for name in ('fp32', 'bf16', 'bf16_compile')}
json.dump(psnr, open(target, 'w'), indent=1)
for task in psnr['fp32']:
    print(f"{task:<10}" + ''.join(f"  {name} {values[task]:.4f}" for name, values in psnr.items()))
for name in ('bf16', 'bf16_compile'):
    worst = max(abs(psnr[name][task] - psnr['fp32'][task]) for task in psnr['fp32'])
    print(f'{name}: max |PSNR - fp32 PSNR| over the tasks = {worst:.4f} dB')
EOF
fi

# Training step: VLUNet against the release's arithmetic (float32, batch 2), and the CLIP share at batch 32 in
# bf16 (on the 80 GB H100 a float32 step at batch 32 failed in its forward pass; bf16 peaks at 55 GB).
bench train128_b2_compare_release --skip-inference --compare-release
bench train128_b32_bf16 --skip-inference --batch 32 --amp bf16 --warmup 2 --repeat 5
