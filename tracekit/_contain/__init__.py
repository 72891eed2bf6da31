"""Contain: the guard's settings, the per-run guard and its detectors, the on-call actions."""
