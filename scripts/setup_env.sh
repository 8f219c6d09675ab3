#!/usr/bin/env bash
# Create (once) and reuse the virtual environment for this project; print its path on stdout.
#
# The environment lives outside the checkout, keyed by a hash of requirements.txt, so fresh clones and
# repeated CI runs reuse it: ${VLUNET_ENV_ROOT:-~/.cache/vlunet_basicsr}/venv-<hash>.
# Install order: torch + torchvision first, then the other pins, then basicsr (an sdist whose build
# imports torch) with --no-build-isolation so pip does not fetch a second torch, then this package
# (editable, so the `basicsr` command and the `basicsr.plugins` entry-point group exist).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
hash=$(sha256sum < "$repo/requirements.txt" | cut -c1-12)
venv="${VLUNET_ENV_ROOT:-$HOME/.cache/vlunet_basicsr}/venv-$hash"
log() { echo "[setup_env] $*" >&2; }

if [ ! -f "$venv/.complete" ]; then
  log "creating $venv (torch wheels are large: a few minutes on a fresh machine)"
  start=$(date +%s)
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  grep -E '^(torch|torchvision)==' "$repo/requirements.txt" > "$venv/stage1.txt"
  grep -vE '^(torch|torchvision|basicsr)==|^#|^$' "$repo/requirements.txt" > "$venv/stage2.txt"
  grep -E '^basicsr==' "$repo/requirements.txt" > "$venv/stage3.txt"
  "${pip[@]}" -r "$venv/stage1.txt" >&2
  "${pip[@]}" -r "$venv/stage2.txt" >&2
  "${pip[@]}" --no-build-isolation -r "$venv/stage3.txt" >&2
  touch "$venv/.complete"
  log "environment ready in $(( $(date +%s) - start )) s"
fi
# Cheap on every call: points the editable install at this checkout.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -e "$repo" >&2
echo "$venv"
