"""The exception hierarchy of fedseg.

Every error the library raises on purpose derives from :class:`FedsegError`; the CLI turns any of them
into one red line on stderr and exit code 1. Messages say what was expected, what arrived and where
(file, case, tensor), and never contain key material or patient data.

    FedsegError
    ├── ConfigError          a plan or configuration value is missing or nonsensical
    │   ├── PlanError        plan.toml does not parse or validate
    │   ├── DeviceError      a --device value is not auto | cpu | cuda | cuda:N, or names a device not here
    │   └── OutputOverlapError  an output path is one of the command's own inputs
    ├── KeyFileError         a key file is malformed, encrypted without a passphrase, or would be overwritten
    ├── ArtifactError        a .fedseg file is malformed, truncated, too large, or its payload is unsafe
    │   ├── SignatureError   the signature, key id or signer does not verify against the plan
    │   └── BindingError     a verified file belongs to another federation, plan, kind, round or parent
    ├── StateError           rollback/replay protection refused a round, or the ledger is broken
    │   └── LockError        another run holds the folder's lock
    ├── StoreError           a round store (folder, SFTP, S3) cannot be reached, or another member holds a round
    ├── ImageError           an image cannot be read or has the wrong shape, grid or values
    ├── DatasetError         raw-case discovery or a site dataset is invalid
    ├── MetricsError         evaluation inputs cannot be paired or scored
    ├── TrainingError        local training cannot start or diverged (NaN loss)
    └── AggregationError     too few acceptable updates, or the strategy cannot run
"""

from __future__ import annotations

__all__ = [
    "AggregationError",
    "ArtifactError",
    "BindingError",
    "ConfigError",
    "DatasetError",
    "DeviceError",
    "FedsegError",
    "ImageError",
    "KeyFileError",
    "LockError",
    "MetricsError",
    "OutputOverlapError",
    "PlanError",
    "SignatureError",
    "StateError",
    "StoreError",
    "TrainingError",
]


class FedsegError(Exception):
    """Base class of every error fedseg raises on purpose."""


class ConfigError(FedsegError):
    """A configuration value is missing or nonsensical."""


class PlanError(ConfigError):
    """A federation plan does not parse or validate."""


class DeviceError(ConfigError):
    """A device name is not ``auto | cpu | cuda | cuda:N``, or names a device this machine lacks."""


class OutputOverlapError(ConfigError):
    """An output path (``--out``, ``--ledger``...) would overwrite one of the command's own inputs."""


class KeyFileError(FedsegError):
    """A key file is malformed, needs a passphrase, or would be overwritten."""


class ArtifactError(FedsegError):
    """A .fedseg file is malformed, truncated, too large, or carries an unsafe payload."""


class SignatureError(ArtifactError):
    """The signature, key id or signer of an artifact does not verify against the plan."""


class BindingError(ArtifactError):
    """A verified artifact belongs to another federation, plan, kind, round or parent."""


class StateError(FedsegError):
    """Rollback/replay protection refused a round, or the ledger is broken."""


class LockError(StateError):
    """Another run holds the lock of the folder this one would write."""


class StoreError(FedsegError):
    """A round store cannot be reached or written, or another coordinator already published a round."""


class ImageError(FedsegError):
    """An image cannot be read or has the wrong shape, grid or values."""


class DatasetError(FedsegError):
    """Raw-case discovery failed or a site dataset is invalid."""


class MetricsError(FedsegError):
    """Evaluation inputs cannot be paired or scored."""


class TrainingError(FedsegError):
    """Local training cannot start or diverged."""


class AggregationError(FedsegError):
    """Too few acceptable updates, or the strategy cannot run."""
