"""Capture: runs, tools, the model and entry-point decorators, the recorder, the process
state.
"""
