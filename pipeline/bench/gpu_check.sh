#!/usr/bin/env bash
# GPU checks on a machine with one NVIDIA GPU, from the repository root:
#
#   bash pipeline/bench/gpu_check.sh [OUT_DIR]          (GLOVE=path/to/glove.txt.gz to name GloVe)
#
# 1. teacher inference, BERT-base shape: end to end and model-only in bf16 (SDPA, length-sorted
#    token-budget batches) against a plain padded fp32 loop, in one run;
# 2. TinyBERT augmentation with a BERT-base-shaped MLM: the reference port and ours on the same GPU;
# 3. the student and teacher-inference tests with CUDA visible (the stages pick the GPU by themselves).
# Needs torch with CUDA, transformers, pyarrow, pydantic, pyyaml, pytest; no Ray.
set -uo pipefail
out=${1:-.bench/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__,
'|', torch.cuda.get_device_name(0), '|', torch.get_num_threads(), 'CPU threads')" | tee -a "$out/gpu.txt"
timeout 240 python3 -m pipeline.bench.teacher --models base --device cuda --dtype bf16 --rows-base 16384 \
    --shard-rows 4096 --token-budget 65536 --row-group-bytes 67108864 --repeats 3 --json "$out/teacher.json" 2>&1 \
    | tee "$out/teacher.log"
timeout 240 python3 -m pipeline.bench.tinybert --shape base --device cuda --sentences 200 --chunk 100 \
    --batch-tokens 16384 ${GLOVE:+--glove "$GLOVE"} 2>&1 | tee "$out/tinybert.log"
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_student.py tests/test_teacher_inference.py 2>&1 | tail -15 | tee "$out/gpu_tests.log"
