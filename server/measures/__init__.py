"""Measurement-based care: questionnaires, their scores, safety alerts and session feedback."""
