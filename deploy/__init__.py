"""Delivery: the multi-arch image build, CD notification and the Raspberry Pi deployer.

The deployer modules (``auth``, ``config``, ``deployer``, ``webhook``, ``notify``, ``boot``) use the
standard library only, so the Pi runs them with its system Python straight from a checkout,
without TensorFlow or a virtualenv.
"""
