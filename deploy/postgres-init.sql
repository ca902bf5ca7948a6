-- MLflow keeps its tracking store in its own database beside Dagster's.
CREATE DATABASE mlflow;
