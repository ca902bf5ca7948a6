"""Model training, evaluation, storage and experiment tracking (no Dagster imports)."""


class ModelError(ValueError):
    """Bad input to training or scoring; the message says what is wrong and what is needed."""


class InsufficientDataError(ModelError):
    pass
