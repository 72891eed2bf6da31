"""Never again: make-test writes the incident's pytest case from a template."""
