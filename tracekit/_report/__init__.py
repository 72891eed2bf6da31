"""The postmortem page: summary, charts, signature, scope and timeline of a run or an incident."""
