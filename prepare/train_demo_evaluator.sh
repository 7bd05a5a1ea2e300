#!/usr/bin/env bash
# Rebuild the demo word vectors and the demo evaluator (seeded, CPU, ~2-3 minutes on one thread).
#
#   dataset_demo/glove/                         MiniLM-derived stand-ins in the GloVe file format (NOT GloVe)
#   checkpoints/demo/t2m/text_mot_match/        evaluator weights (model/finest.tar) + training log
#   checkpoints/demo/t2m/Comp_v6_KLD005/        opt.txt and meta/{mean,std}.npy
#
# The demo evaluator is trained and model-selected on all 68 demo clips and their captioned sub-ranges (the demo generation model is trained on
# them too), so it judges whether generated motions match the demo captions; its numbers are NOT comparable with
# published HumanML3D results (other word vectors, 20 clips, reduced widths).
#
# Usage: bash prepare/train_demo_evaluator.sh [checkpoints_dir] [glove_dir]
set -euo pipefail
cd "$(dirname "$0")/.."
CK=${1:-checkpoints/demo}
GLOVE=${2:-dataset_demo/glove}
# One intra-op thread: frugal on shared machines, and reruns are bit-identical on the same torch build.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

python -m prepare.demo_glove --data_root dataset_demo/HumanML3D --out "$GLOVE" --seed 2312 --overwrite

python train_evaluator.py --dataset_name t2m --data_root dataset_demo --checkpoints_dir "$CK" \
    --glove_dir "$GLOVE" --device cpu --seed 1234 --overwrite \
    --train_split all --val_split all --batch_size 8 --lr 5e-4 --movement_epochs 2 --max_epoch 25 \
    --dim_movement_enc_hidden 128 --dim_movement_latent 128 --dim_movement_dec_hidden 128 \
    --dim_text_hidden 128 --dim_motion_hidden 128 --dim_coemb_hidden 64 --log_every 0
