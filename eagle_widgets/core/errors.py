"""Errors raised by eagle-widgets. Each names the problem in words a user can act on."""


class EagleError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(EagleError, ValueError):
    """An argument (image, regions, selection, parameter) is not usable."""


class ScorerError(EagleError, RuntimeError):
    """A scorer returned something the engine cannot use."""


class Cancelled(EagleError):
    """The caller cancelled: the engine stops between batches, and a scorer that waits on others (a server)
    may raise it mid-batch; either way the search returns what it measured."""


class BundleError(EagleError, OSError):
    """A saved result could not be written or read."""


class NewerBundleError(BundleError):
    """A saved result was written by a newer eagle-widgets: readable by it, so never to be deleted here."""


class UnsupportedModel(InputError):
    """The method needs something this model family does not provide."""


class ModelError(EagleError, RuntimeError):
    """The model could not score a batch even at batch size 1 (out of memory)."""


class NotComposable(EagleError):
    """The processor's output is not an affine function of the masked image (or could not be measured)."""


class NotAVisionLanguageModel(InputError):
    """The model or processor cannot take an image."""


class CacheError(EagleError, OSError):
    """The cache folder cannot be used."""
