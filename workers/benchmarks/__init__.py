"""Benchmark metrics and data readers, torch-free: MedVAL-Bench, report metrics (GREEN, BLEU,
ROUGE-L, BERTScore) and SMMILE.

Each module reproduces a released evaluation (the upstream file is named in its docstring) so a
job on this platform gives the numbers the papers' own scripts give. Models are not called here:
the job layer runs the judge or the model under test and hands the answers to these functions.
"""
