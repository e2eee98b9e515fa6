"""The shared records that flow between stages: task -> policy -> verifier -> algorithm -> trainer -> eval.

Small typed dataclasses, JSON-friendly through ``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["correct", "incorrect", "unparsable", "timeout", "error"]
STATUSES: tuple[str, ...] = ("correct", "incorrect", "unparsable", "timeout", "error")
# Statuses that say "the grader could not judge", as opposed to "the answer is wrong".
# A trainer may mask these instead of rewarding 0; audits count them.
FAILURE_STATUSES: frozenset[str] = frozenset({"unparsable", "timeout", "error"})


@dataclass
class Verdict:
    """What a verifier says about one completion."""

    reward: float
    status: Status
    reason: str = ""
    extracted: str | None = None
    elapsed_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}; expected one of {STATUSES}")

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    @property
    def is_failure(self) -> bool:
        """True for unparsable/timeout/error: the grader could not judge the answer."""
        return self.status in FAILURE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            reward=float(d["reward"]),
            status=d["status"],
            reason=d.get("reason", ""),
            extracted=d.get("extracted"),
            elapsed_ms=float(d.get("elapsed_ms", 0.0)),
        )


@dataclass
class Sample:
    """One task instance: a prompt plus what its verifier needs to grade an answer.

    ``verifier`` names the verifier (``math``, ``code``, ``ifeval``, or a task-specific one such as
    ``reasoning_gym``); ``gold`` is that verifier's reference (a math answer string, code tests,
    an IFEval ``{"instruction_id_list", "kwargs"}`` dict, ...).
    ``prompt`` is either plain text or a list of chat messages ``[{"role", "content"}]``.
    """

    id: str
    prompt: str | list[dict[str, str]]
    verifier: str
    gold: Any
    family_id: str | None = None
    variation_id: str | None = None
    difficulty: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def messages(self, system: str | None = None) -> list[dict[str, str]]:
        """The prompt as chat messages (a plain-text prompt becomes one user turn)."""
        msgs = (
            list(self.prompt) if isinstance(self.prompt, list) else [{"role": "user", "content": self.prompt}]
        )
        if system and not any(m.get("role") == "system" for m in msgs):
            msgs = [{"role": "system", "content": system}, *msgs]
        return msgs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Rollout:
    """One sampled completion of a sample's prompt, with its verdict."""

    sample_id: str
    group: int  # index of the prompt within the step's batch; completions of one prompt share it
    completion: str
    verdict: Verdict
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False  # hit max_new_tokens without a stop

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["verdict"] = self.verdict.to_dict()
        return d


@dataclass
class RunManifest:
    """Everything needed to re-run a run: resolved config, seeds, data hashes, versions, commit."""

    command: list[str]
    config: dict[str, Any]
    seeds: dict[str, int]
    data_hashes: dict[str, str]
    packages: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    created: str
    python: str
    platform: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
