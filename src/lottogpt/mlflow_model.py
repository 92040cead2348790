"""The MLflow pyfunc of a lottogpt checkpoint, logged as *models-from-code* (nothing is pickled).

``lottogpt.registry.register`` logs this file as the model's code and the checkpoint's three files
(``model.safetensors``, ``config.json``, ``tokenizer.model``) as its ``checkpoint`` artifact. At load
time MLflow runs this file, which only defines a thin wrapper and calls ``set_model``: the model itself
is built by :class:`lottogpt.inference.ModelEngine` from the installed ``lottogpt`` package, and the
answers go through the same code as ``lottogpt predict`` (``lottogpt.cases.predict_lines``).

``predict`` takes cases in the ``predict`` JSON form, ``{"tickets": [[6 ints], ...], "winning": [6 ints],
"bonus": int}`` (a list of such dicts, one dict, or a DataFrame with those columns), and returns one
dict per case: ``{"output": "<six lines>", "counts": {...}, "return_rate": "62.5"}``, or ``{"error":
"[ERROR] ..."}`` for a case the kata or the model refuses.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel, PythonModelContext

from lottogpt.cases import predict_lines
from lottogpt.inference import ModelEngine

CHECKPOINT_ARTIFACT = "checkpoint"


def plain(value: Any) -> Any:
    """Numpy arrays and scalars (as pandas hands them over) -> lists and Python numbers."""
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def records(model_input: Any) -> list[dict]:
    """The cases of any input form the pyfunc accepts, as plain dicts."""
    if hasattr(model_input, "to_dict") and hasattr(model_input, "columns"):  # a pandas DataFrame
        model_input = model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        model_input = [model_input]
    return [plain(record) for record in model_input]


class LottoGPTModel(PythonModel):
    """A ``ModelEngine`` over the logged checkpoint, answering like ``lottogpt predict``."""

    def load_context(self, context: PythonModelContext) -> None:
        self.engine = ModelEngine(context.artifacts[CHECKPOINT_ARTIFACT])

    # No type hints on purpose: MLflow would infer a signature from them and override the logged one.
    def predict(self, context, model_input, params=None):
        """One answer dict per case, in the order of the cases."""
        lines = [json.dumps(record) for record in records(model_input)]
        answers, _ = predict_lines(self.engine, lines)
        return answers


mlflow.models.set_model(LottoGPTModel())
