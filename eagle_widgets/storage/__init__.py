"""Storage around the engine: the disk cache of explanations and the import of the authors' result files.

(The result bundle format itself, `core.bundle`, stays with the engine's `Attribution`.)
"""

from ..core.errors import CacheError
from .cache import ResultCache, default_cache_dir, fingerprint
from .reference import import_reference_result

__all__ = ["CacheError", "ResultCache", "default_cache_dir", "fingerprint", "import_reference_result"]
