"""Dataset catalog: manifests (data cards), source readers, de-identification, releases."""
