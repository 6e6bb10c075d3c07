"""The simulator one unit report uses: offline, or an LLM within a call budget with offline fallback."""

from __future__ import annotations

from typing import Sequence

from .llm_simulator import llm_batches, llm_call_budget, llm_simulate_batch
from .offline_simulator import offline_simulate
from .schemas import LLM


class _Simulator:
    """Simulates records offline, or with an LLM in calls of about :data:`LLM_TOKENS_PER_CALL`
    record tokens (at least one record a call) and at most ``budget`` calls; a request the remaining budget cannot
    cover whole is simulated offline (counted in ``over_budget``).
    One instance serves a whole unit report, so its own score, the control and the modes
    share the budget."""

    simulator: str | LLM

    def __init__(self, simulator: "str | LLM | _Simulator", budget: int | None = None):
        if isinstance(simulator, _Simulator):
            simulator = simulator.simulator
        self.simulator = simulator
        self.name = "offline" if simulator == "offline" else "llm"
        self.fallbacks = 0  # records the LLM gave no usable answer for
        self.over_budget = 0  # records simulated offline because the call budget was spent
        self.calls = 0
        self.budget = llm_call_budget() if budget is None else budget

    def many(self, explanation: str, token_lists: Sequence[Sequence[str]]) -> list[list[float]]:
        if self.simulator == "offline" or isinstance(self.simulator, str):
            return [offline_simulate(explanation, t) for t in token_lists]
        out: list[list[float] | None] = [None] * len(token_lists)
        groups = llm_batches([len(t) for t in token_lists])
        if self.calls + len(groups) > self.budget:  # a score is simulated one way throughout: never half LLM, half offline
            self.over_budget += len(token_lists)
            return [offline_simulate(explanation, t) for t in token_lists]
        for idx in groups:
            self.calls += 1
            for i, got in zip(idx, llm_simulate_batch(self.simulator, explanation, [token_lists[i] for i in idx])):
                if got is None:
                    self.fallbacks += 1
                out[i] = got
        return [o if o is not None else offline_simulate(explanation, t) for o, t in zip(out, token_lists)]

    def __call__(self, explanation: str, tokens: Sequence[str]) -> list[float]:
        return self.many(explanation, [tokens])[0]

    def warnings(self) -> list[str]:
        out = []
        if self.fallbacks:
            out.append(f"The LLM simulator gave no usable answer for {self.fallbacks} record(s) (unreachable or unreadable); "
                       "the offline simulator filled in.")
        if self.over_budget:
            out.append(f"The LLM call budget ({self.budget} simulation calls per unit; GNOTHI_LLM_CALL_BUDGET) was spent: "
                       f"{self.over_budget} record(s) were simulated offline.")
        return out
