"""Prediction, prediction intervals and the forecast table."""
