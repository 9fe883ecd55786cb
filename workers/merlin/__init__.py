"""Merlin: a 3D abdominal CT vision-language model (embeddings, phenotypes, five-year risk,
zero-shot findings, report generation)."""

FAMILY = "merlin"
ADAPTER = "workers.merlin.adapter:build_adapter"  # one adapter class per adapter.kind
TINY = "workers.merlin.tiny:build"
CONTRACT = "workers.merlin.contract"
