"""A minimal ``llm(prompt) -> str`` over an OpenAI-compatible endpoint, for evaluation runs.

Used only when the orchestrator's own client (``gnothi.agents.llm``) is not available.
Errors become :class:`~gnothi.tools.errors.LLMError` with what to check.
"""

from __future__ import annotations

import os


class OpenAICompatible:
    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, timeout: float = 60.0, max_tokens: int = 256):
        self.base_url = base_url
        self.model = model or os.environ.get("GNOTHI_LLM_MODEL") or "local"
        self.api_key = api_key or os.environ.get("GNOTHI_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        self.timeout = timeout
        self.max_tokens = max_tokens
        self._client = None

    def describe(self) -> dict:
        return {"type": "openai-compatible", "base_url": self.base_url, "model": self.model}

    def __call__(self, prompt: str) -> str:
        from gnothi.tools.errors import LLMError

        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=1)
        try:
            r = self._client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], max_tokens=self.max_tokens, temperature=0.0
            )
        except Exception as e:
            raise LLMError(
                f"The LLM endpoint {self.base_url} did not answer ({type(e).__name__}: {str(e)[:160]}).",
                "Check the server is running and --llm-base-url / --llm-model are right, or run without an LLM.",
            ) from None
        return (r.choices[0].message.content or "") if r.choices else ""
