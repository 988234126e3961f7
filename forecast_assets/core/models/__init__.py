"""Forecasting models. Every model shares one forward signature (see ``base.ForecastModel``)."""
