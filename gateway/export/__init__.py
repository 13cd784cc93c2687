"""Preference data out: the formats, the provenance sidecar, the dataset card."""
