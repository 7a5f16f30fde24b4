#!/usr/bin/env bash
# Issue 12's pretraining campaign, continued from the last exported model: a general Korean biLM on NSMC
# corpus.txt (weight 2) plus the ko-open training split (weight 1), in the background, across sessions.
# Scripts live here, in the repository, so that a new machine loses only the checkpoints (session 18 began on
# a new machine: the run directory of sessions 15-17 was gone, and with it the scripts that lived there).
#
#   bash benchmarks/campaign.sh RUN_DIR              a new run from INIT (the packaged ko-general by default)
#   bash benchmarks/campaign.sh RUN_DIR --resume     continue RUN_DIR/model from its last checkpoint
#   e.g. STEPS=14000 setsid nohup nice -n 10 bash benchmarks/campaign.sh ~/contextemb-runs/ko-general-sw2 \
#            >> ~/contextemb-runs/ko-general-sw2/train.log 2>&1 &
#
# Environment: STEPS (--max-steps; the learning rate warms up over 200 steps, then decays linearly to 1/10 of
# LR by STEPS; on --resume a new STEPS moves the end of the schedule), INIT (a packaged name or a model
# directory), LR (default 1e-3: a continued run starts below the 2e-3 of a new one), SEED, SHARED (default
# ../shared), DATA (default ~/contextemb-runs/data: nsmc-test.txt and ko-open-split/, made here when missing),
# CONTEXTEMB (the command; default the checkout's .venv/bin/contextemb).
# Then: bash benchmarks/package_model.sh RUN_DIR (export and score), python -m benchmarks.model_card (the card).
set -euo pipefail
source "$(dirname "$0")/run_setup.sh"
if [ ! -f "$data/ko-open-split/heldout.txt" ]; then
    "$ce" holdout "$shared/data/ko-open" --out "$data/ko-open-split" --every 200
fi
exec "$ce" pretrain "$shared/data/nsmc/corpus.txt" "$data/ko-open-split/train" --mix corpus=2 "${start[@]}" \
    --out "$run/model" --valid "$data/nsmc-test.txt" --lr "${LR:-1e-3}" --seed "${SEED:-2027}" \
    --max-steps "${STEPS:-14000}" --eval-every 2500 --checkpoint-every 250 --log-every 100 --threads 2 \
    --no-progress "$@"
