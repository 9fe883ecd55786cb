"""SRRG: chest X-ray to structured report (findings / impression), SRR-BERT labels, F1-SRR-BERT."""

FAMILY = "srrg"
TINY = "workers.srrg.tiny:build"
