"""The project's error types.

Every message says what was expected, what was found and what to do about it. The CLI prints
``str(error)`` as one line and exits non-zero (exit code :attr:`MaskAttnError.exit_code`).
"""

from __future__ import annotations


class MaskAttnError(Exception):
    """Base class of every error maskattn-trt raises on purpose."""

    exit_code = 1


class BadInputError(MaskAttnError, ValueError):
    """A user-supplied value, file or option is not what the command expects."""

    exit_code = 2


class ConfigError(BadInputError):
    """A configuration value or recipe is invalid."""


class CheckpointError(MaskAttnError):
    """A gate checkpoint is missing, corrupted, or made for another UNet / configuration."""

    exit_code = 3


class ModelLoadError(BadInputError):
    """A model folder is missing or is not an SDXL pipeline."""


class ExportError(MaskAttnError):
    """Exporting or validating an ONNX graph failed."""

    exit_code = 4


class EngineBuildError(MaskAttnError):
    """Building, loading or refitting a TensorRT engine failed."""

    exit_code = 5


class BackendUnavailableError(MaskAttnError):
    """A backend package or device (TensorRT, CUDA, ...) is not available here."""

    exit_code = 6


class ParityError(MaskAttnError):
    """Outputs of two backends differ by more than the stated tolerance."""

    exit_code = 7


class NonFiniteError(MaskAttnError):
    """A computation produced NaN or infinity (a loss, gate weights, latents, an image)."""

    exit_code = 8
