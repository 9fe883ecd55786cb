"""What an OIP server of this platform says about itself (worker and gateway alike)."""

from __future__ import annotations

SERVER_NAME = "medserve"
EXTENSIONS = ["binary_tensor_data", "statistics", "model_repository", "model_configuration"]
