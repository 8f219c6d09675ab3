#!/usr/bin/env bash
# Distributed training on one node: scripts/dist_train.sh NUM_PROCESSES OPTION_YAML [BasicSR flags]
#   scripts/dist_train.sh 8 options/train_nhrbl.yml [--auto_resume]
exec "$(dirname "$0")/dist_launch.sh" train "$@"
