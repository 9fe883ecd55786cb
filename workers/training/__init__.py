"""Training library behind the `train-classifier` and `train-latent-classifier` jobs.

Torch-free at import: `params`, `callbacks` and `sources` can be imported by the job
system's submit-time checks; the torch parts live in `classifier`, `latent`, `loop`, `data`,
`models` and `throughput`.
"""

JOB_TYPES = ("train-classifier", "train-latent-classifier")
