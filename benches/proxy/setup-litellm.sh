#!/usr/bin/env bash
# Installs the LiteLLM proxy into benches/proxy/.venv for the optional LiteLLM target of run.sh.
#
# Usage: benches/proxy/setup-litellm.sh
#
# - creates the venv with the system python3 (python3-venv on Debian),
# - pip-installs a pinned `litellm[proxy]` (override with LITELLM_VERSION=x.y.z),
# - checks that the installed version has the built-in `litellm_content_filter` guardrail
#   that benches/proxy/litellm-config.yaml uses.
#
# run.sh renders the config at run time (the mock's port is only known then); nothing here
# touches the network except pip.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
# Pinned for reproducible numbers. Newer releases (1.108+) pin `litellm-proxy` and
# `litellm-proxy-extras` versions that are not on PyPI here, so `litellm[proxy]` does not
# resolve for them; avoid 1.107.0 too: that release was compromised upstream.
version="${LITELLM_VERSION:-1.106.12}"

python="${PYTHON:-python3}"
if ! "$python" -c 'import venv' 2>/dev/null; then
    echo "error: $python has no venv module; install it with: apt-get install -y python3-venv" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv"
    "$python" -m venv "$venv"
fi

echo "installing litellm[proxy]==$version (takes a minute or two)"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "litellm[proxy]==$version"

# The content filter guardrail ships inside litellm; fail loudly if this version lacks it.
"$venv/bin/python" - <<'PY'
import importlib, sys
import litellm
try:
    importlib.import_module(
        "litellm.proxy.guardrails.guardrail_hooks.litellm_content_filter"
    )
except ImportError as err:
    sys.exit(f"error: litellm {litellm.__version__ if hasattr(litellm, '__version__') else ''} "
             f"has no built-in content filter guardrail: {err}")
from importlib.metadata import version
print(f"litellm {version('litellm')} with the litellm_content_filter guardrail is ready")
PY
