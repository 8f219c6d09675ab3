#!/usr/bin/env bash
# Distributed (sharded) testing on one node: scripts/dist_test.sh NUM_PROCESSES OPTION_YAML
#   scripts/dist_test.sh 8 options/test_nhrbl.yml
exec "$(dirname "$0")/dist_launch.sh" test "$@"
