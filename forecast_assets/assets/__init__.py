"""The Dagster layer: thin assets that read inputs, call the core once and record metadata."""
