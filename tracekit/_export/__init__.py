"""Export: incident bundles and the cassette of their HTTP exchanges."""
