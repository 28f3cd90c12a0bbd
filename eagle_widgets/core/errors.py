"""Errors raised by eagle-widgets. Each names the problem in words a user can act on."""


class EagleError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(EagleError, ValueError):
    """An argument (image, regions, selection, parameter) is not usable."""


class ScorerError(EagleError, RuntimeError):
    """A scorer returned something the engine cannot use."""


class BundleError(EagleError, OSError):
    """A saved result could not be written or read."""


class NewerBundleError(BundleError):
    """A saved result was written by a newer eagle-widgets: readable by it, so never to be deleted here."""
