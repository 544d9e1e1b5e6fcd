"""The model's life: retraining on curated identities and the registry of versions."""
