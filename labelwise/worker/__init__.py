"""Celery app, thin tasks and per-process resources."""
