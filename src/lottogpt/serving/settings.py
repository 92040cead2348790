"""What one server is allowed to do: its engine, its caps and its batching."""

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lottogpt.inference import Engine
from lottogpt.onnx_backend import Backend

EngineFactory = Callable[[], Engine]


class Settings(BaseModel):
    """What the server is allowed to do; every cap is named in the error that enforces it."""

    model_config = ConfigDict(frozen=True)

    engine: Literal["model", "reference"] = "model"
    model: str = "models/checkpoint"
    device: str = "auto"
    max_batch_size: int = Field(64, ge=1, description="cases in one forward pass")
    max_wait_ms: float = Field(0.0, ge=0, description="how long the first queued case waits for company")
    max_cases: int = Field(64, ge=1, description="cases in one /v1/predict request")
    max_tickets: int = Field(100, ge=1, description="tickets in one case, whatever the engine")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="request body size")
    background_load: bool = Field(True, description="serve /healthz while the model loads (else block startup)")
    speculative: bool = Field(True, description="decode a case alone in its batch speculatively (same answer)")
    backend: Backend = Field(
        "auto", description="what runs a lone case's passes: ONNX Runtime (auto on CPU) or PyTorch (same answer)")
