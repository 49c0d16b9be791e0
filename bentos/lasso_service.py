"""``LassoModel``: the Lasso champion(s) behind one batchable API (a "runner")."""

from bentos.runners import model_service

LassoModel = model_service("lasso", "LassoModel")
