"""Training of the forecasting models."""
