"""Provider names as written in YAML, mapped lazily to their classes.

A provider's SDK is imported only when a model of that provider is built, so validating a
config or running local models never imports a cloud SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmbench.suggest import lookup

if TYPE_CHECKING:
    from llmbench.providers.base import Provider
    from llmbench.schema import ModelSpec

PROVIDERS: dict[str, str] = {
    "llamacpp": "llmbench.providers.llamacpp:LlamaCppProvider",
    "openai": "llmbench.providers.openai:OpenAIProvider",
    "openai_compatible": "llmbench.providers.openai:OpenAICompatibleProvider",
    "deepseek": "llmbench.providers.openai:DeepSeekProvider",
    "groq": "llmbench.providers.openai:GroqProvider",
    "xai": "llmbench.providers.openai:XAIProvider",
    "together": "llmbench.providers.openai:TogetherProvider",
    "openrouter": "llmbench.providers.openai:OpenRouterProvider",
    "anthropic": "llmbench.providers.anthropic:AnthropicProvider",
    "gemini": "llmbench.providers.gemini:GeminiProvider",
    "ollama": "llmbench.providers.ollama:OllamaProvider",
    "recorded": "llmbench.providers.recorded:RecordedProvider",
}


def provider_class(name: str) -> type[Provider]:
    cls: type[Provider] = lookup(PROVIDERS, name, "provider")
    return cls


def build_provider(spec: ModelSpec) -> Provider:
    return provider_class(spec.provider)(spec)
