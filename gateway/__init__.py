"""An OpenAI-compatible embeddings gateway with a per-input cache."""
