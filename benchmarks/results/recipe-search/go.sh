#!/bin/bash
# usage: go.sh NAME SEED [overrides...]   (one thread, lowest priority, no progress bar)
name=$1; seed=$2; shift 2
cd /work/wt13
PYTHONPATH=/work/wt13 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 19 /work/main/.venv/bin/python -m accelerated.train \
  --run.out_dir /work/recipe2/runs --run.name $name-s$seed --run.seed $seed --run.progress false "$@" \
  > /work/recipe2/logs/$name-s$seed.log 2>&1
