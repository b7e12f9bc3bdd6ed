"""One lock for the Hugging Face libraries' imports and loads, across the run's threads.

Pipeline steps run as threads of one process. ``evaluate`` imports ``transformers`` (and,
where installed, ``torch``) as it is imported, and ``datasets`` fingerprints a load by
pickling, checking ``"transformers" in sys.modules`` and then reading
``transformers.PreTrainedTokenizerBase``: while another thread is still importing
``transformers`` that attribute is missing and the load fails (seen as
``AttributeError: module 'transformers' has no attribute 'PreTrainedTokenizerBase'`` in a
task's load step). Holding this lock while importing, loading or computing with them makes
one thread finish before the next looks.

``evaluate`` is imported without ``transformers``: its package imports
``transformers.pipelines`` (and so torch) for its ``Evaluator`` classes, which llmbench does
not use; with transformers and torch installed (for dense retrieval) that took 9-13 s of a
scoring run on the shared 2-core machine, against 3-4 s without.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

HF_LOCK = threading.RLock()


def import_evaluate() -> ModuleType:
    """``evaluate``, imported under :data:`HF_LOCK` and, unless something already imported
    transformers, with transformers hidden from it (its Evaluator classes then say they are
    unavailable; metric modules do not use them)."""
    with HF_LOCK:
        if "evaluate" in sys.modules:
            return sys.modules["evaluate"]
        hide = "transformers" not in sys.modules
        if hide:
            sys.modules["transformers"] = None  # type: ignore[assignment]  # import -> ImportError
        try:
            return importlib.import_module("evaluate")
        finally:
            if hide:
                del sys.modules["transformers"]
