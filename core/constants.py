"""Every name two processes must agree on: Redis key prefixes, Celery names, HTTP headers, the
model store's marker file. One place, so a deployment (or a test) can change a prefix once.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("medserve")
except PackageNotFoundError:  # a checkout that was never installed
    VERSION = "0.0.0"

# Redis key prefixes (job records and leases; the gateway's rate-limit counters).
JOBS_PREFIX = "medserve:jobs:"
RATE_LIMIT_PREFIX = "medserve:ratelimit:"

# Celery: the one task name; queues for campaigns/benchmarks and for training jobs.
CELERY_APP = "medserve-jobs"
TASK_NAME = "medserve.jobs.run"
JOBS_QUEUE = "medserve-jobs"
TRAINING_QUEUE = "medserve-training"

# HTTP headers between clients, gateway and workers (lower case, as ASGI carries them).
REQUEST_ID_HEADER = "x-request-id"
PRIORITY_HEADER = "x-medserve-priority"
TIMEOUT_HEADER = "x-medserve-timeout-s"
ERROR_CODE_HEADER = "x-medserve-error-code"
OIP_HEADER_LENGTH = "inference-header-content-length"

# The model store: the file written last in a model's folder, saying how its weights got there.
STORE_MARKER = "medserve.json"
STORE_LOCK = "medserve.lock.json"
