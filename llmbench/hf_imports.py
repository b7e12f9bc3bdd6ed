"""One lock for the Hugging Face libraries' imports and loads, across the run's threads.

Pipeline steps run as threads of one process. ``evaluate`` imports ``transformers`` (and,
where installed, ``torch``) as it is imported, and ``datasets`` fingerprints a load by
pickling, checking ``"transformers" in sys.modules`` and then reading
``transformers.PreTrainedTokenizerBase``: while another thread is still importing
``transformers`` that attribute is missing and the load fails (seen as
``AttributeError: module 'transformers' has no attribute 'PreTrainedTokenizerBase'`` in a
task's load step). Holding this lock while importing or loading with them makes one thread
finish before the next looks.
"""

from __future__ import annotations

import threading

HF_LOCK = threading.RLock()
