"""A typed Python client for the medserve gateway's `/v1` API (sync and asyncio).

Needs httpx only; images read into Pillow or numpy, and volumes and latents into numpy, when
asked. `/v2` (Open Inference Protocol) is for `tritonclient`; the OpenAI-compatible routes are
for the `openai` SDK (see docs/client.md).
"""

from medserve_client.client import AsyncClient, Client
from medserve_client.errors import (
    APIError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    MedserveClientError,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
)
from medserve_client.resources import Artifact, Artifacts, Job, JobEvent, JobPage, ModelInfo
from medserve_client.results import (
    Evaluation,
    Generation,
    Grade,
    Grades,
    Latent,
    Reconstruction,
    Volume,
)

__all__ = [
    "APIError", "Artifact", "Artifacts", "AsyncClient", "Client", "Conflict", "ConnectionFailed",
    "Evaluation", "Generation", "Grade", "Grades", "InvalidRequest", "Job", "JobEvent", "JobPage",
    "Latent", "MedserveClientError", "ModelInfo", "NotFound", "RateLimited", "Reconstruction",
    "ServerError", "Unauthorized", "Unavailable", "Volume",
]  # fmt: skip
