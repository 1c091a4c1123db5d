"""torch Datasets over built chips; modality-pair sampling."""
