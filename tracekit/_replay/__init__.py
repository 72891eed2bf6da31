"""Replay: policy replay, agent replay and its serving, suggest-bounds."""
