"""SRRG: chest X-ray to structured report (findings / impression), SRR-BERT labels, F1-SRR-BERT."""

FAMILY = "srrg"
ADAPTER = "workers.srrg.adapter:SRRGAdapter"
TINY = "workers.srrg.tiny:build"
CONTRACT = "workers.srrg.contract"
