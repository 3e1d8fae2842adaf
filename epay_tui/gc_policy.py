"""When the client collects garbage: at quiet moments, never in the middle of typing.

CPython's cyclic collector runs a full (generation-2) collection whenever enough
objects have survived the young generations, wherever the program happens to be. A
full collection walks every container object in the process: Textual, the fee
screen's rows and caches, and (with the embedded sandbox, or in the benchmark) the
backend's FastAPI/pydantic objects too. It stopped the app for 100-300 ms, 13 times
in one run of ``benchmarks/ui.py``, some of them between a key and its frame.

So, in this one place:

- **Freeze what start-up made.** Modules, classes and the app's own long-lived objects
  are moved out of the collector's sight (``gc.freeze()``) once the app is up, and
  again once the embedded backend has started: later collections walk only what was
  made after. (Garbage cycles among frozen objects are never freed; this is what
  existed at start-up, a bounded amount, not something that grows with use.)
- **No automatic full collection while keys come.** The generation-2 threshold is
  raised to :data:`GEN2_EVERY` generation-1 collections (CPython's default is 10), so
  young collections (cheap: they only walk recent objects) go on as usual, and full
  ones wait for…
- **A quiet moment**: :meth:`QuietCollector.tick` (the app calls it every
  :data:`CHECK_SECONDS`) runs ``gc.collect()`` once no key or click has come for
  :data:`QUIET_SECONDS` and something was promoted since the last full collection.
- **A bound on memory.** If the student never stops, CPython's own full collection
  still runs after :data:`GEN2_EVERY` young ones: garbage cycles cannot pile up
  without end, they are only collected later.

The app installs the policy when it mounts and restores the interpreter's settings
when it unmounts (the tests run many apps in one process).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

QUIET_SECONDS = 1.0
"""No key or click for this long: a full collection will not be in anyone's way."""
CHECK_SECONDS = 0.5
"""How often the app asks whether it is a quiet moment."""
GEN2_EVERY = 200
"""Generation-1 collections between automatic full ones (CPython's default: 10)."""


class QuietCollector:
    """The garbage-collection policy of one running app (see the module's docstring)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.last_input = now()
        """When the last key or click came (``now``'s clock)."""
        self._saved: tuple[int, int, int] | None = None
        self.collections = 0
        """Full collections run at quiet moments (the tests wait on it)."""
        self.freezes = 0

    @property
    def installed(self) -> bool:
        return self._saved is not None

    def install(self) -> None:
        """Freeze what exists now and stop automatic full collections from running
        every 10 young ones."""
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        young, middle, _ = self._saved
        gc.set_threshold(young, middle, GEN2_EVERY)
        self.freeze()

    def freeze(self) -> None:
        """Move everything alive now to the permanent generation (start-up objects)."""
        if self._saved is not None:
            gc.freeze()
            self.freezes += 1

    def uninstall(self) -> None:
        """Give the interpreter its own settings back; frozen objects are unfrozen."""
        if self._saved is None:
            return
        gc.set_threshold(*self._saved)
        self._saved = None
        gc.unfreeze()

    def input(self) -> None:
        """A key or a click: not a quiet moment for another :data:`QUIET_SECONDS`."""
        self.last_input = self._now()

    def tick(self) -> bool:
        """Collect now if it is a quiet moment and there may be garbage; whether it did."""
        if self._saved is None or self._now() - self.last_input < QUIET_SECONDS:
            return False
        if gc.get_count()[2] == 0:  # no young collection since the last full one
            return False
        gc.collect()
        self.collections += 1
        return True
