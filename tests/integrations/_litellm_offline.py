"""Imported before litellm: LiteLLM fetches its model price map from GitHub when it is imported,
unless told to use the copy it ships. The tests (and the incident tests they run in a
subprocess, which inherits the environment) never touch the network."""

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
