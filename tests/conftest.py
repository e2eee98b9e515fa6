import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder beside the checkout (test data that is not copied into the repo)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present beside the checkout")
    return SHARED


def _sandbox_problem() -> str:
    from rlvr.verify import sandbox

    try:
        sandbox.check_sandbox()
    except sandbox.SandboxUnavailable as e:
        return str(e)
    return ""


# Code-verifier tests need bubblewrap. Without it they are skipped on a developer's machine, but in CI
# (CI=true, where the set-up script installs it) they run and fail loudly instead of hiding.
NO_SANDBOX = _sandbox_problem()
needs_sandbox = pytest.mark.skipif(
    bool(NO_SANDBOX) and not os.environ.get("CI"), reason=f"no sandbox here: {NO_SANDBOX}"
)
