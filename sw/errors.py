"""Errors the user can cause. The CLI prints each as one line and exits non-zero."""


class EIEError(Exception):
    """Base class: a problem with the user's input, files or configuration (not a bug)."""


class ConfigError(EIEError):
    """An impossible or inconsistent accelerator configuration."""


class DataError(EIEError):
    """Missing or corrupt input data (datasets, checkpoints, model files, images)."""


class FitError(EIEError):
    """A layer or network that does not fit the configured memories."""
