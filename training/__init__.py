"""Training, walk-forward evaluation and the model registry.

Every model is judged against the persistence forecast ("next hour's close =
this hour's close") on the same rows. The registry promotes a new version to
champion only if it does at least as well as the current champion; the service's
default model is the best champion by walk-forward ratio, or naive when none beats
the persistence floor.
"""
