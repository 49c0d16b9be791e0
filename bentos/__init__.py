"""Serving stage: BentoML services, the inference transform and a typed HTTP client."""
