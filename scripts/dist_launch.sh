#!/usr/bin/env bash
# Distributed BasicSR pipelines on one node with torchrun: scripts/dist_launch.sh train|test NUM_PROCESSES OPTION_YAML [flags]
# (scripts/dist_train.sh and scripts/dist_test.sh call it). The backend is dist_params.backend in the YAML
# (default nccl with CUDA, gloo without); MASTER_PORT picks the port (default 4321). Several nodes: run
#   torchrun --nnodes=N --node_rank=R --nproc_per_node=G --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT \
#            -m vlunet_basicsr.train -opt X.yml --launcher pytorch
# on every node (see README).
set -euo pipefail
if [ $# -lt 3 ] || { [ "$1" != train ] && [ "$1" != test ]; }; then
  echo "usage: $0 train|test NUM_PROCESSES OPTION_YAML [BasicSR flags]" >&2
  exit 2
fi
mode=$1
nproc=$2
config=$3
shift 3
exec torchrun --nproc_per_node="$nproc" --master_port="${MASTER_PORT:-4321}" \
  -m "vlunet_basicsr.$mode" -opt "$config" --launcher pytorch "$@"
