"""Quality control of synthetic chest X-rays by the platform's own models (docs/synthetic-qc.md).

`params` (the parameter blocks), `checks` (one image through SRRG, SRR-BERT and the demographic
classifiers, and the accept/reject decision), `stage` (a campaign's image slot: generate, check,
regenerate with the next seed), `report` (pass rates and label F1 per subgroup with confidence
intervals, subgroup warnings, qc.json / qc.md) and `plots` (the report's PNGs). Torch-free.
"""
