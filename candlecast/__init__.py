"""candlecast's core: what every stage shares, and nothing stage-specific.

- :mod:`candlecast.settings`: the one typed settings object and the paths under
  ``$CANDLECAST_HOME``.
- :mod:`candlecast.times`: the one UTC parser and ``HOUR``.
- :mod:`candlecast.symbols`: product ids (``BTC-USD``) and the served symbols.
- :mod:`candlecast.errors`: the error kinds every CLI maps to exit codes.
- :mod:`candlecast.feast_store`: Feast access (apply, materialize, push, the one
  online read, point-in-time reads) and the feature-service names.
- :mod:`candlecast.contract`: the model contract between training and serving.
- :mod:`candlecast.artifacts`: a model's files and its forward pass.
- :mod:`candlecast.model_store`: reading the BentoML model store by the contract.
- :mod:`candlecast.cli` and :mod:`candlecast.logs`: the ``candlecast`` console
  script, the helpers every CLI shares, and logging set up once per entry point.

Stages (``ingestion``, ``training``, ``bentos``, ``deploy``) import the core; the
core imports no stage. Nothing here has side effects at import time.
"""

__version__ = "0.1.0"
