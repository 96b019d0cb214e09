"""Offline work: feature extraction, training, evaluation and figures."""
