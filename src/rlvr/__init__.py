"""rlvr: reinforcement learning with verifiable rewards for reasoning language models."""

from rlvr.records import Rollout, RunManifest, Sample, Verdict

__version__ = "0.1.0"
__all__ = ["Rollout", "RunManifest", "Sample", "Verdict", "__version__"]
