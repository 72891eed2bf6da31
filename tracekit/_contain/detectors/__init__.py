"""The guard's bounds and detectors: one module each (see ``base.py`` for what a detector is).

They are registered by listing their settings among ``tracekit.Guard``'s bases
(``tracekit/_contain/settings.py``), in the order the guard consults them.
"""
