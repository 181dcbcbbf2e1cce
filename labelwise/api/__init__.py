"""The HTTP API (FastAPI): jobs, label sets, health. Routes call pipeline.py, never SQL directly."""
