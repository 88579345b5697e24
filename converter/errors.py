"""One small exception hierarchy; the CLI's top-level handler maps each class to an exit code.

Every message names the thing that is wrong (file, layer, tensor, op) and what to do about it,
because the user sees only the message, never a traceback.
"""

from __future__ import annotations

# The two exit codes that are not an SqzError: a bug (EX_SOFTWARE) and Ctrl-C (128 + SIGINT).
INTERNAL_ERROR = 70
INTERRUPTED = 130


class SqzError(Exception):
    """Base of every error the tools report to the user."""

    exit_code = 1
    label = "error"


class UsageError(SqzError):
    """Bad command-line arguments or option values."""

    exit_code = 2
    label = "usage error"


class InputFileError(SqzError):
    """A file the user named is missing, unreadable or of the wrong kind."""

    exit_code = 3
    label = "input error"


class ModelError(SqzError):
    """The model cannot be converted: float/hybrid .tflite, unsupported op, bad tensor."""

    exit_code = 4
    label = "model error"


class CalibrationError(SqzError):
    """Calibration data missing, empty or of the wrong shape."""

    exit_code = 5
    label = "calibration error"


class BudgetError(SqzError):
    """The model does not fit the target's flash, SRAM or PSRAM."""

    exit_code = 6
    label = "does not fit"


class BuildError(SqzError):
    """A compiler, linker or emulator needed for the job failed or is missing."""

    exit_code = 7
    label = "build error"


class ReferenceFailure(SqzError):
    """The host reference interpreter failed in a way we cannot work around."""

    exit_code = 8
    label = "reference error"


class ModelMismatchError(SqzError):
    """Generated code and reference .tflite (or other model files) do not belong together."""

    exit_code = 9
    label = "model mismatch"


class MismatchError(SqzError):
    """Device outputs differ from the reference: the bit-exact contract is broken."""

    exit_code = 10
    label = "MISMATCH"


class DeviceError(SqzError):
    """Base for problems talking to a device."""

    exit_code = 11
    label = "device error"


class DeviceTimeoutError(DeviceError):
    """The device does not answer (after bounded retries)."""

    exit_code = 11
    label = "device not answering"


class WrongModelError(DeviceError):
    """The device runs a different model than the one being validated."""

    exit_code = 12
    label = "wrong model on device"


class DeviceResetError(DeviceError):
    """The device rebooted in the middle of a run."""

    exit_code = 13
    label = "device reset"


class ProtocolError(DeviceError):
    """The device answered, but not in a way the protocol allows, or sent an error frame."""

    exit_code = 14
    label = "protocol error"


class OutputBusyError(SqzError):
    """Another sqz run is writing the same output (its lock is held)."""

    exit_code = 15
    label = "output in use"
